"""The gate in front of the routes: the key and the body's size are checked before the body is read.

FastAPI reads (and spools) a request's whole body before it resolves the route's dependencies,
so a wrong key or an oversized body would otherwise be found out only after the last byte
arrived. The Gate answers a missing or wrong key on /v1, and a body declared larger than its cap,
from the headers alone; a body without a declared length is counted as it streams in and cut
off as soon as it passes the cap. A project with rate limits is checked here too, once its key
is known (api/ratelimit.py), so a refused request costs no body either.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import PROJECT_SCOPE_KEY, authenticate
from api.errors import APIError, Unauthorized, api_error
from api.ratelimit import Limiter, RawHeaders
from core.config import Settings
from core.errors import TooLarge
from core.uploads import PART_BYTES

# an upload's multipart framing and form fields (purpose, expires_after) around the file's bytes
FORM_BYTES = 64 * 1024


class _CutOff(HTTPException):
    """Raised into the app's receive() once the body passes its cap. An HTTPException, because
    FastAPI passes those through its body parsing untouched; the Gate answers in its place."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


def is_multipart(headers: Headers) -> bool:
    return headers.get("content-type", "").lower().startswith("multipart/form-data")


def _is_upload(scope: Scope) -> bool:
    """A file's bytes: POST /v1/files, or POST /v1/containers/{id}/files as multipart (the same
    route takes `{"file_id": ...}` as JSON, which is capped as any other body)."""
    method: str = scope["method"]
    parts = str(scope["path"]).rstrip("/").split("/")
    if method != "POST":
        return False
    if parts == ["", "v1", "files"]:
        return True
    container_file = len(parts) == 5 and parts[:3] == ["", "v1", "containers"] and parts[4] == "files"
    return container_file and is_multipart(Headers(scope=scope))


def _is_part(scope: Scope) -> bool:
    """A part of an upload: POST /v1/uploads/{id}/parts, multipart, up to PART_BYTES of data."""
    parts = str(scope["path"]).rstrip("/").split("/")
    return (
        scope["method"] == "POST"
        and len(parts) == 5
        and parts[:3] == ["", "v1", "uploads"]
        and parts[4] == "parts"
    )


def _declared(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


async def _answer(send: Send, error: APIError, *, close: bool, extra: RawHeaders | None = None) -> None:
    """The error in OpenAI's envelope. `close` ends the connection: the body that is still on
    its way is then never read (keeping the connection would mean reading it all to skip it)."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """Answers 401 for a missing or wrong key on /v1 and 413 for a body past its cap (the file
    limit plus FORM_BYTES for an upload, `max_request_bytes` for anything else), before the
    route reads the body; 429 for a project past its rate limits (`limiter`, None: no limits)."""

    def __init__(
        self, app: ASGIApp, settings: Settings, keys: dict[str, str], limiter: Limiter | None = None
    ) -> None:
        self.app, self.settings, self.keys, self.limiter = app, settings, keys, limiter

    def _too_large(self, scope: Scope) -> APIError:
        if _is_upload(scope):
            return api_error(TooLarge("File", self.settings.max_file_bytes, param="file"))
        if _is_part(scope):
            return api_error(TooLarge("Part", PART_BYTES, param="data"))
        return api_error(TooLarge("Request body", self.settings.max_request_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _declared(headers)
        unread = bool(declared) or "transfer-encoding" in headers
        project = None
        if scope["path"] == "/v1" or scope["path"].startswith("/v1/"):
            try:
                project = scope[PROJECT_SCOPE_KEY] = authenticate(headers.get("authorization", ""), self.keys)
            except Unauthorized as exc:
                await _answer(send, exc, close=unread)
                return
        cap = self.settings.max_request_bytes
        if _is_upload(scope):
            cap = self.settings.max_file_bytes + FORM_BYTES
        elif _is_part(scope):
            cap = PART_BYTES + FORM_BYTES
        if declared is not None and declared > cap:
            await _answer(send, self._too_large(scope), close=True)
            return
        extra: RawHeaders = []
        if self.limiter is not None and project is not None:
            refused, extra = await self.limiter.check(scope, project)
            if refused is not None:
                await _answer(send, refused, close=unread, extra=extra)
                return
        await self._counted(scope, receive, send, cap, extra)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, cap: int, extra: RawHeaders) -> None:
        received, over, started = 0, False, False

        async def counting() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    over = True
                    raise _CutOff()
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # whatever the app makes of the cut-off, the 413 below answers instead
            if message["type"] == "http.response.start":
                started = True
                if extra:  # the project's x-ratelimit-* headers
                    message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await _answer(send, self._too_large(scope), close=True)
