"""A run's claim and its rounds' ends on asyncpg (PostgreSQL; see core/pg.py for why).

The claim is one UPDATE plus the reads the prompt needs; a round's end is one statement: the
guarded UPDATE of the run, and the rows it writes as CTEs that insert only if the guard held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table

from core import pg
from core.models import RUNS

CLAIM = (
    "UPDATE runs SET status = 'in_progress', owner = $2, lease_until = $3, started_at = coalesce(started_at, $4), "
    f"attempts = attempts + 1 WHERE id = $1 AND status = 'queued' RETURNING {pg.columns(RUNS)}"
)
CANCEL_QUEUED = (
    "UPDATE runs SET status = 'cancelled', cancelled_at = $2, expires_at = NULL "
    f"WHERE id = $1 AND status = 'cancelling' AND owner IS NULL RETURNING {pg.columns(RUNS)}"
)
# the newest messages a prompt could hold (see workers/runs.py THREAD)
THREAD = (
    "SELECT id, role, content, run_id, attachments FROM (SELECT id, seq, role, content, run_id, attachments, "
    "sum(length(content::text)) OVER (ORDER BY seq DESC) - length(content::text) AS newer "
    "FROM messages WHERE thread_id = $1) m WHERE newer <= $2 ORDER BY seq"
)
ROUNDS = "SELECT type, step_details FROM run_steps WHERE run_id = $1 ORDER BY seq"


class Postgres(pg.Postgres):
    async def claim(self, run_id: str, owner: str, lease_until: float, t: float,
                    chars: Callable[[Any], int]) -> tuple[Any, Any, list[Any], list[Any]]:
        """(run or None, the run cancelled while queued or None, its thread's newest messages (up to
        `chars(run)` characters of content before the oldest), its steps)."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            run = pg.record(await conn.fetchrow(CLAIM, run_id, owner, lease_until, t))
            if run is None:
                return None, pg.record(await conn.fetchrow(CANCEL_QUEUED, run_id, t)), [], []
            thread = pg.records(await conn.fetch(THREAD, run.thread_id, chars(run)))
            # usage is set once a round has been recorded: only then are there steps to replay
            steps = pg.records(await conn.fetch(ROUNDS, run_id)) if run.usage else []
        return run, None, thread, steps

    async def finish(self, run_id: str, owner: str, values: dict[str, Any],
                     inserts: list[tuple[Table, dict[str, Any]]]) -> bool:
        """Set `values` on the run and insert `inserts`, only if `owner` holds it in_progress."""
        params = pg.Params(run_id, owner)
        sets = ", ".join(f"{pg.quoted(k)} = {params.add(v)}" for k, v in values.items())
        parts = [f"r AS (UPDATE runs SET {sets} WHERE id = $1 AND owner = $2 AND status = 'in_progress' RETURNING id)"]
        parts += [f"i{i} AS ({pg.insert_rows(table, [row], params, source='r')})" for i, (table, row) in enumerate(inserts)]
        sql = "WITH " + ", ".join(parts) + " SELECT count(*) FROM r"
        return bool(await (await self.pool()).fetchval(sql, *params.values))
