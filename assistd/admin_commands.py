"""What `assistd runs ...` and `assistd projects usage` do (their options: assistd/admin.py): an
operator's look at the database, in either mode (ASSISTD_DATABASE_URL: SQLite or PostgreSQL),
with or without the server running.

Plain tables for people, `--json` for machines. Times in tables are UTC; in JSON, Unix seconds
(as on the wire).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from core.config import get_settings
from core.db import check_migrated, sync_engine
from core.errors import NotMigrated
from core.ids import now
from core.models import RUNS, STEPS
from core.responses import RESPONSES
from core.run_filters import run_filters

log = logging.getLogger("assistd")
# the run's columns `runs show` prints, in this order (JSON has them all)
SHOWN = (
    "id", "project", "status", "model", "thread_id", "assistant_id", "created_at", "started_at",
    "completed_at", "cancelled_at", "failed_at", "expires_at", "last_error", "usage", "owner",
    "lease_until", "attempts",
)  # fmt: skip


@contextmanager
def database() -> Iterator[Connection]:
    url = get_settings().database_url
    try:
        check_migrated(url)
    except NotMigrated as exc:
        sys.exit(f"assistd: {exc}")
    engine = sync_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _time(value: Any) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _plain(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """Times in whole seconds, as on the wire."""
    return {k: int(v) if k.endswith(("_at", "_until")) and v is not None else v for k, v in row.items()}


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = [columns, *rows]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def emit(
    args: argparse.Namespace, machine: Any, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    print(json.dumps(machine, indent=2) if args.json else table(columns, rows))


def _run(conn: Connection, run_id: str) -> dict[str, Any]:
    row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().first()
    if row is None:
        sys.exit(f"assistd: no run {run_id}")
    return dict(row)


def runs_list(args: argparse.Namespace) -> int:
    c = RUNS.c
    older = None if args.older_than is None else now() - args.older_than
    where = run_filters(project=args.project or None, status=args.status or None, created_before=older)
    query = select(c.id, c.project, c.status, c.model, c.thread_id, c.created_at, c.owner).where(*where)
    with database() as conn:
        found = [
            dict(r) for r in conn.execute(query.order_by(c.created_at.desc()).limit(args.limit)).mappings()
        ]
    columns = ("ID", "PROJECT", "STATUS", "MODEL", "THREAD", "CREATED (UTC)", "WORKER")
    rows = [
        (
            r["id"],
            r["project"],
            r["status"],
            r["model"],
            r["thread_id"],
            _time(r["created_at"]),
            r["owner"] or "",
        )
        for r in found
    ]
    emit(args, [_jsonable(r) for r in found], columns, rows)
    return 0


def runs_show(args: argparse.Namespace) -> int:
    with database() as conn:
        run = _run(conn, args.run_id)
    shown = [(k, _time(run[k]) if k.endswith(("_at", "_until")) else _plain(run[k])) for k in SHOWN]
    emit(args, _jsonable(run), ("FIELD", "VALUE"), shown)
    return 0


def runs_cancel(args: argparse.Namespace) -> int:
    """As POST .../runs/{id}/cancel: a run waiting for tool outputs is cancelled at once (its
    pending step too); a queued or in_progress one becomes `cancelling`, which its worker (or, for
    a queued run, whichever worker gets it) turns into `cancelled`."""
    settings = get_settings()
    t = now()
    with database() as conn:
        status = _run(conn, args.run_id)["status"]
        c = RUNS.c
        moved = False
        if status == "requires_action":
            values = {"status": "cancelled", "cancelled_at": t, "required_action": None}
            moved = bool(
                conn.execute(
                    update(RUNS).where(c.id == args.run_id, c.status == status).values(values)
                ).rowcount
            )
            if moved:
                s = STEPS.c
                pending = (s.run_id == args.run_id, s.type == "tool_calls", s.status == "in_progress")
                conn.execute(update(STEPS).where(*pending).values(status="cancelled", cancelled_at=t))
        elif status in ("queued", "in_progress"):
            moved = bool(
                conn.execute(
                    update(RUNS).where(c.id == args.run_id, c.status == status).values(status="cancelling")
                ).rowcount
            )
        if not moved:
            sys.exit(f"assistd: cannot cancel run {args.run_id} with status '{status}'")
        run = _run(conn, args.run_id)
    if run["status"] == "cancelling" and settings.redis_url:
        # a queued run's id goes to the workers again so one finishes it now; without it the
        # sweeper re-sends it after ASSISTD_REQUEUE_AFTER_SECONDS. In embedded mode the server's
        # own queue still holds the id (and `serve` re-sends every queued run when it starts).
        try:
            from core.broker import enqueue_run

            enqueue_run(args.run_id)
        except Exception as exc:
            log.warning(
                "could not enqueue %s (%s); the workers' sweeper will send it again", args.run_id, exc
            )
    emit(args, _jsonable(run), ("ID", "STATUS"), [(run["id"], run["status"])])
    return 0


def _usage(conn: Connection, table: Any, since: float, keys: tuple[str, str]) -> dict[str, dict[str, int]]:
    """Per project: how many rows since `since`, and their tokens summed (in, out, total)."""
    c = table.c

    def total(key: str) -> Any:
        return func.coalesce(func.sum(c.usage[key].as_integer()), 0)

    query = (
        select(c.project, func.count(), total(keys[0]), total(keys[1]), total("total_tokens"))
        .where(c.created_at >= since)
        .group_by(c.project)
    )
    return {
        p: {"count": int(n), "input": int(i), "output": int(o), "total": int(tt)}
        for p, n, i, o, tt in conn.execute(query).all()
    }


def projects_usage(args: argparse.Namespace) -> int:
    since = now() - args.since
    with database() as conn:
        runs = _usage(conn, RUNS, since, ("prompt_tokens", "completion_tokens"))
        responses = _usage(conn, RESPONSES, since, ("input_tokens", "output_tokens"))
    none = {"count": 0, "input": 0, "output": 0, "total": 0}
    out = []
    for project in sorted(runs.keys() | responses.keys()):
        r, s = runs.get(project, none), responses.get(project, none)
        out.append(
            {
                "project": project,
                "runs": r["count"],
                "responses": s["count"],
                "input_tokens": r["input"] + s["input"],
                "output_tokens": r["output"] + s["output"],
                "total_tokens": r["total"] + s["total"],
            }
        )
    columns = ("PROJECT", "RUNS", "RESPONSES", "INPUT TOKENS", "OUTPUT TOKENS", "TOTAL TOKENS")
    emit(args, out, columns, [tuple(str(v) for v in row.values()) for row in out])
    return 0
