"""Which runs a project-wide listing shows: the filters that GET /v1/assistd/runs (the playground's
runs view) and `assistd runs list` share, so the two cannot mean different things by a status or
a time bound."""

from __future__ import annotations

from typing import get_args

from openai.types.beta.threads.run_status import RunStatus
from sqlalchemy import ColumnElement

from core.models import RUNS

STATUSES: tuple[str, ...] = get_args(RunStatus)


def run_filters(
    *,
    project: str | None = None,
    status: str | None = None,
    assistant_id: str | None = None,
    created_after: float | None = None,
    created_before: float | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses on the runs table for the filters given (None: not filtered); times are
    Unix seconds, both bounds exclusive.

    With a project, ix_runs_project_seq finds its runs in creation order: a page is one index range."""
    c = RUNS.c
    where: list[ColumnElement[bool]] = []
    if project is not None:
        where.append(c.project == project)
    if status is not None:
        where.append(c.status == status)
    if assistant_id is not None:
        where.append(c.assistant_id == assistant_id)
    if created_after is not None:
        where.append(c.created_at > created_after)
    if created_before is not None:
        where.append(c.created_at < created_before)
    return where
