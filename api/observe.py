"""The one layer every request passes first: its id, its metrics and its access log line.

Kept in one pure-ASGI layer because each layer costs every request a call and a wrapped `send`.
The id goes out as `x-request-id` (OpenAI's header and format, `req_` and 32 hex digits; the
openai SDK shows it as `_request_id` on results and `request_id` on errors) on every answer that
leaves the app: the Gate's 401s and 413s, CatchAll's 500s and streams included.
"""

from __future__ import annotations

import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import IN_FLIGHT, LATENCY, REQUESTS
from core import logs
from core.logs import route_template

access = logging.getLogger("assistd.access")


def new_request_id() -> str:
    return "req_" + os.urandom(16).hex()


def log_access(scope: Scope, status: int, seconds: float) -> None:
    """One line for a request, written when its answer ended (a stream's at its last byte)."""
    # raw_path as sent, percent-encoded: a decoded path could carry a line break into text logs
    path = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
    ms = round(seconds * 1000, 1)
    method, request_id = scope["method"], scope[logs.REQUEST_ID_KEY]
    fields = {"method": method, "path": path, "status": status, "duration_ms": ms}
    access.info("%s %s %d %.1fms %s", method, path, status, ms, request_id, extra={"fields": fields})


class Observe:
    """Names every request (`x-request-id`, and the log context of its lines), counts and times
    it under its route template (`/v1/threads/{thread_id}`, never the raw path, so the number of
    series stays bounded), and writes its access line if `access_log`."""

    def __init__(self, app: ASGIApp, access_log: bool) -> None:
        self.app, self.access_log = app, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        request_id = scope[logs.REQUEST_ID_KEY] = new_request_id()
        header = (b"x-request-id", request_id.encode())

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                LATENCY.labels(scope["method"], route_template(scope)).observe(time.perf_counter() - started)
            await send(message)

        token = logs.REQUEST.set(scope)
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            IN_FLIGHT.dec()
            REQUESTS.labels(scope["method"], route_template(scope), str(status)).inc()
            if self.access_log:
                log_access(scope, status, time.perf_counter() - started)
            logs.REQUEST.reset(token)
