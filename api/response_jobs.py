"""A response's execution seen from the API: store it, hand it to the workers, and answer as
the request asked (the API never calls the model; see docs/responses.md).

- background: the queued response at once;
- stream: the response's event log relayed as server-sent events;
- otherwise: the response its terminal event carries, once a worker has ended it.

A plain or streamed (not background) response whose client hangs up is cancelled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from api.errors import APIError, BadRequest
from core.errors import Conflict
from core.events import STOPS, EventLog, event_log
from core.ids import now
from core.responses import ACTIVE_RESPONSE_STATUSES as ACTIVE
from core.responses import CONTEXT_TOO_LONG, ITEMS, RESPONSES, wire_response
from core.store import RunStore

log = logging.getLogger("assistd.api")
ENDS = {"response.completed", "response.incomplete", "response.failed", "response.cancelled"}
CANCELLED = "response.cancelled"  # ours: ends a cancelled response's log, never relayed
LOCKED = "Another process is currently operating on this conversation. Please retry in a few seconds."
WAIT_MS = 1000  # a plain create looks for its client's hang-up this often while it waits
KEEP_ALIVE_MS = 15_000


def event(kind: str, sequence: int, **fields: Any) -> tuple[str, str]:
    return kind, json.dumps({"type": kind, "sequence_number": sequence} | fields)


async def submit(request: Request, row: dict[str, Any], items: list[dict[str, Any]]) -> Response:
    """Store a new response (queued) and its input items in one write, enqueue it, and answer.

    A streamed response's first events are written before it is stored: when the event log
    cannot take them the request fails with nothing stored, so the client's retry makes no second
    response (those of a response then refused stay unread until they expire)."""
    store: RunStore = request.app.state.store
    wire = wire_response(_columns(row))
    if row["stream"]:
        events = [event("response.created", 0, response=wire)]
        if row["background"]:
            events.append(event("response.queued", 1, response=wire))
        await event_log().publish(row["id"], events)
    try:
        await store.insert([(RESPONSES, [row]), (ITEMS, items)])
    except Conflict:
        raise BadRequest(LOCKED, param="conversation", code="conversation_locked") from None
    request.app.state.enqueue(row["id"])
    if row["stream"]:
        return relay(request, row["id"], cancel_on_hang_up=not row["background"], project=row["project"])
    if row["background"]:
        return Response(json.dumps(wire), media_type="application/json")
    return await _wait(request, row["id"], row["project"])


def _columns(row: dict[str, Any]) -> Any:
    return SimpleNamespace(**{("meta" if k == "metadata" else k): v for k, v in row.items()})


async def _wait(request: Request, response_id: str, project: str) -> Response:
    """The response once a worker has ended it (its terminal event carries it; the row, should
    the event be lost)."""
    events, after = event_log(), "0"
    while True:
        batch = await events.read(response_id, after, WAIT_MS)
        for after, name, data in batch:
            if name in ENDS:
                return await _ended(request, json.loads(data)["response"])
        if not batch:
            row = await request.app.state.store.owned(RESPONSES, response_id, project)
            if row is None:  # a `store: false` response, forgotten at its end: its event was lost
                raise APIError("The response ended, but its result was lost; create it again.")
            if row.status not in ACTIVE:
                return await _ended(request, wire_response(row))
        if await request.is_disconnected():
            await cancel(request.app.state.store, response_id)
            return Response(status_code=499)


async def _ended(request: Request, response: dict[str, Any]) -> Response:
    """A plain create's answer: the ended response, or OpenAI's 400 for an input too long for
    the model's window (a response OpenAI would never have stored: neither is it kept here)."""
    error = response.get("error") or {}
    if response["status"] == "failed" and error.get("message") == CONTEXT_TOO_LONG:
        await request.app.state.store.forget_response(response["id"])
        raise BadRequest(CONTEXT_TOO_LONG, param="input", code="context_length_exceeded")
    return Response(json.dumps(response), media_type="application/json")


async def cancel(store: RunStore, response_id: str) -> dict[str, Any] | None:
    """Cancel a queued or in_progress response; its row as it now stands, or None if it had
    already ended. The worker running it notices and stops (its end would no longer apply)."""
    row = await store.cancel_response(response_id, now())
    if row is None:
        return None
    await event_log().publish(response_id, [(CANCELLED, json.dumps({"response": wire_response(row)}))])
    if not row.store:  # nothing of it is kept once it ends
        await store.forget_response(response_id)
    return dict(row._mapping)


async def _gone(request: Request, response_id: str, project: str | None, relayed: bool) -> bytes | None:
    """The end of a response whose log will never tell it (it ended more than an hour ago and the
    log expired, or the end's event was lost), built from its row: b"" to end the stream without
    an event (cancelled, or gone); None while it runs. A stream that relayed nothing yet also
    gets its `response.created`, which clients expect first."""
    if project is None:
        return None
    row = await request.app.state.store.owned(RESPONSES, response_id, project)
    if row is not None and row.status in ACTIVE:
        return None
    if row is None or row.status == "cancelled":
        return b""
    wire = wire_response(row)
    kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
        row.status, "response.failed"
    )
    events = [] if relayed else [event("response.created", 0, response=wire)]
    events.append(event(kind, len(events), response=wire))
    return b"".join(f"event: {name}\ndata: {data}\n\n".encode() for name, data in events)


def relay(
    request: Request,
    response_id: str,
    starting_after: int = -1,
    *,
    cancel_on_hang_up: bool = False,
    project: str | None = None,
) -> StreamingResponse:
    """The response's events with a sequence_number past `starting_after`, then live ones, until
    it ends. A client that hangs up stops only its relay, unless `cancel_on_hang_up`."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    body = _relay(request, event_log(), response_id, starting_after, cancel_on_hang_up, project)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


async def _relay(
    request: Request,
    events: EventLog,
    response_id: str,
    starting_after: int,
    cancel_on_hang_up: bool,
    project: str | None,
) -> AsyncIterator[bytes]:
    after, ended, wait_ms = "0", False, 50  # a short first wait: an expired log is told at once
    try:
        while True:
            batch = await events.read(response_id, after, wait_ms)
            wait_ms = KEEP_ALIVE_MS
            if not batch:
                end = await _gone(request, response_id, project, relayed=after != "0")
                if end is not None:  # its log will not tell the end: its row does
                    ended = True
                    yield end
                    return
                yield b": keep-alive\n\n"
                continue
            for after, name, data in batch:
                if name == CANCELLED:
                    ended = True
                    return
                if starting_after < 0 or json.loads(data).get("sequence_number", 0) > starting_after:
                    yield f"event: {name}\ndata: {data}\n\n".encode()
                if name in STOPS:
                    ended = True
                    return
    finally:
        if cancel_on_hang_up and not ended:
            with anyio.CancelScope(shield=True):  # the relay itself is being cancelled
                await cancel(request.app.state.store, response_id)
