"""Long polls: the SDK's poll helpers (`create_and_poll`, `runs.poll`) mark their requests with
`X-Stainless-Poll-Helper`. Such a retrieve of a run that is still going is answered when the run
ends or needs the client (its terminal event on the run's log, which workers write for every
run, streamed or not), or after `poll_wait_seconds`, not at once: a flow then polls once
instead of every `openai-poll-after-ms`, and hears of the end the moment it is written.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request

from core.events import STOPS, event_log

HEADER = "x-stainless-poll-helper"
CHECK_MS = 1000  # the run's row is read again this often, should its event be lost
GOING = ("queued", "in_progress", "cancelling")


def wants_wait(request: Request, status: str) -> bool:
    return status in GOING and HEADER in request.headers and request.app.state.settings.poll_wait_seconds > 0


async def until_changed(request: Request, run_id: str, still_going: Callable[[], Awaitable[bool]]) -> None:
    """Return once the run's log has its end (or requires_action), its row says it is no longer
    going, the wait is over, or the client has left."""
    events, after = event_log(), "0"
    deadline = time.monotonic() + request.app.state.settings.poll_wait_seconds
    while (left := deadline - time.monotonic()) > 0:
        batch = await events.read(run_id, after, max(1, int(min(CHECK_MS / 1000, left) * 1000)))
        if any(name in STOPS for _, name, _ in batch):
            return
        if batch:  # a streamed run's deltas: read on
            after = batch[-1][0]
        elif not await still_going() or await request.is_disconnected():
            return
