"""The Runner's housekeeping for responses (workers/runner.py does the same for runs): which
responses in flight to stop, lease renewal, and the sweep that re-queues a dead worker's
responses, re-sends lost messages and fails those past their time budget."""

from __future__ import annotations

import json

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.responses import RESPONSES
from workers.context import Context
from workers.responses.loop import RELEASED, next_sequence, publish, wire

TIMED_OUT = {"code": "server_error", "message": "The response did not finish within its time budget."}
c = RESPONSES.c


def is_response(job_id: str) -> bool:
    return job_id.startswith("resp_")


async def to_stop(engine: AsyncEngine, ids: list[str], owner: str) -> list[str]:
    """Of our responses in flight, those cancelled, taken over or ended elsewhere."""
    async with engine.connect() as conn:
        query = select(c.id).where(c.id.in_(ids), (c.status != "in_progress") | (c.owner != owner))
        return list((await conn.execute(query)).scalars())


async def renew(engine: AsyncEngine, ids: list[str], owner: str, lease_until: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(RESPONSES)
            .where(c.id.in_(ids), c.owner == owner, c.status == "in_progress")
            .values(lease_until=lease_until)
        )


async def sweep(ctx: Context, t: float, lapsed_only: bool, stale: float, resend: bool) -> list[str]:
    """Responses to enqueue again: those whose worker died (lease lapsed; every in_progress one
    unless `lapsed_only`), and, if `resend`, queued ones whose message went out before `stale`.
    Those past `expires_at` fail, and their logs hear so."""
    lapsed = c.lease_until < t if lapsed_only else c.lease_until.is_not(None)
    async with ctx.engine.begin() as conn:
        expired = (
            await conn.execute(
                update(RESPONSES)
                .where(c.status.in_(("queued", "in_progress")), c.expires_at < t)
                .values(status="failed", error=TIMED_OUT, output=[], **RELEASED)
                .returning(*RESPONSES.c)
            )
        ).all()
        again = list(
            (
                await conn.execute(
                    update(RESPONSES)
                    .where(c.status == "in_progress", lapsed)
                    .values(status="queued", enqueued_at=t, **RELEASED)
                    .returning(c.id)
                )
            ).scalars()
        )
        if resend:
            again += (
                await conn.execute(
                    update(RESPONSES)
                    .where(c.status == "queued", c.enqueued_at <= stale)
                    .values(enqueued_at=t)
                    .returning(c.id)
                )
            ).scalars()
    for row in expired:
        event = {
            "type": "response.failed",
            "sequence_number": await next_sequence(ctx, row.id),
            "response": wire(row, {}),
        }
        await publish(ctx, row.id, [("response.failed", json.dumps(event))])
    return again
