"""Server-sent events for `stream: true`: publish the API's own events, relay the run's log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from core.events import STOPS, event_log

KEEP_ALIVE_MS = 15_000
logger = logging.getLogger("assistd.api")


def event(name: str, obj: BaseModel) -> tuple[str, str]:
    return name, obj.model_dump_json()


async def publish(run_id: str, events: list[tuple[str, str]]) -> None:
    await event_log().publish(run_id, events)


async def position(run_id: str) -> str:
    """Where the run's log ends now: a stream relayed from here shows only what comes next."""
    return await event_log().last(run_id)


async def _relay(run_id: str, after: str) -> AsyncIterator[bytes]:
    log = event_log()
    failures = 0
    while True:
        try:
            batch = await log.read(run_id, after, KEEP_ALIVE_MS)
            failures = 0
        except Exception:  # Redis restarting: wait a little, then give up with an error event
            failures += 1
            logger.warning("reading the events of %s failed (%d)", run_id, failures, exc_info=True)
            if failures > 10:
                error = {
                    "code": "server_error",
                    "message": "The run's events could not be read.",
                    "param": None,
                    "type": "server_error",
                }
                yield f"event: error\ndata: {json.dumps(error)}\n\n".encode()
                return
            await asyncio.sleep(0.5)
            continue
        if not batch:
            yield b": keep-alive\n\n"
            continue
        for after, name, data in batch:
            yield f"event: {name}\ndata: {data}\n\n".encode()
            if name in STOPS:
                yield b"event: done\ndata: [DONE]\n\n"
                return


def stream(run_id: str, after: str = "0") -> StreamingResponse:
    """The run's events from `after` on, until it stops or needs action; a client that goes away
    only stops its own relay, never the run."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_relay(run_id, after), media_type="text/event-stream", headers=headers)
