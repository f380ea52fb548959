"""Column values for the rows a round writes (and its stream announces): one builder each."""

from __future__ import annotations

from typing import Any

from core.models import new_row
from core.store import RunRow


def _owned(run: RunRow) -> dict[str, Any]:
    return {"project": run.project, "thread_id": run.thread_id, "assistant_id": run.assistant_id}


def message_row(run: RunRow, message_id: str, created: float, **values: Any) -> dict[str, Any]:
    """An assistant message of `run`, in progress and empty unless `values` say otherwise."""
    blank: dict[str, Any] = {
        "content": [],
        "attachments": [],
        "status": "in_progress",
        "completed_at": None,
        "incomplete_at": None,
        "incomplete_details": None,
    }
    return (
        new_row("msg", **_owned(run), role="assistant", run_id=run.id, created_at=created)
        | blank
        | values
        | {"id": message_id}
    )


def step_row(
    run: RunRow, step_id: str, created: float, kind: str, details: dict[str, Any], **values: Any
) -> dict[str, Any]:
    """A run step of `run`, in progress unless `values` say otherwise."""
    blank = {
        "status": "in_progress",
        "usage": None,
        "last_error": None,
        "completed_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "expired_at": None,
    }
    return (
        new_row("step", **_owned(run), run_id=run.id, created_at=created, type=kind, step_details=details)
        | blank
        | values
        | {"id": step_id}
    )
