"""The API's error tree, translated once into OpenAI's envelope.

    APIError                      {"error": {"message", "type", "param", "code"}}
    ├── BadRequest        400     invalid_request_error (a bad parameter, a wrong state)
    ├── Unauthorized      401     invalid_request_error / invalid_api_key
    ├── NotFound          404     invalid_request_error
    ├── ContentTooLarge   413     invalid_request_error (a request body or an upload past its cap)
    ├── RateLimited       429     requests / tokens, code rate_limit_exceeded (api/ratelimit.py)
    └── ServerError       500     server_error

The errors of other packages that a request can cause are translated here, and only here
(`api_error`): routes let them through.

    core.errors.TooLarge            ContentTooLarge, its message and param
    core.errors.BadCursor           BadRequest, its message and param (after / before)
    retrieval.errors.FilterError    BadRequest "Invalid filters: ...", its param, code invalid_value
    RequestValidationError          BadRequest in OpenAI's words (missing, unknown, invalid type...)
    anything else                   ServerError, logged
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import logs
from core.errors import BadCursor, TooLarge
from retrieval.errors import FilterError

log = logging.getLogger("assistd.api")


class APIError(Exception):
    status = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BadRequest(APIError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(APIError):
    status = 401
    type = "invalid_request_error"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"

    @classmethod
    def of(cls, kind: str, object_id: str) -> NotFound:
        return cls(f"No {kind} found with id '{object_id}'.")


class ContentTooLarge(APIError):
    """413, RFC 9110's "Content Too Large"."""

    status = 413
    type = "invalid_request_error"


class RateLimited(APIError):
    """429 as OpenAI answers it: the type names the limit that was reached."""

    status = 429

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.type = kind  # "requests" or "tokens"


class ServerError(APIError):
    pass


CRASHED = "The server had an error while processing your request."
TRANSLATED = (APIError, TooLarge, BadCursor, FilterError)  # what api_error answers in OpenAI's words


def api_error(exc: Exception) -> APIError:
    """The API's answer to an error: its own as raised, another package's in OpenAI's words, and
    anything else a 500 that tells nothing."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, TooLarge):
        return ContentTooLarge(str(exc), param=exc.param)
    if isinstance(exc, BadCursor):
        return BadRequest(str(exc), param=exc.param)
    if isinstance(exc, FilterError):
        return BadRequest(f"Invalid filters: {exc}", param=exc.param, code="invalid_value")
    return ServerError(CRASHED)


def _param(loc: tuple[Any, ...], body: Any = None) -> str | None:
    """The parameter's path as OpenAI writes it (`tools[0].function.name`), without the union
    members pydantic adds to locations ("str", "list[...]", a discriminator's tag)."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    node, walk = body, bool(loc) and loc[0] == "body" and isinstance(body, (dict, list))  # JSON, not a form
    out = ""
    for i, p in enumerate(parts):
        if walk:  # follow the sent JSON: a part it does not hold is a union member's name
            if isinstance(p, int) and isinstance(node, list):
                node = node[p] if p < len(node) else None
            elif isinstance(node, dict) and (p in node or i == len(parts) - 1):  # the last may be missing
                node = node.get(p)
            else:
                continue
        elif _is_union_tag(p):
            continue
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or None


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in ("str", "int", "dict", "list") or "[" in part or "-" in part)


_LIMITS = {  # pydantic's error type -> OpenAI's message, the bound in the error's ctx, OpenAI's code
    "string_too_long": (
        "string too long. Expected a string with maximum length",
        "max_length",
        "string_above_max_length",
    ),
    "string_too_short": (
        "string too short. Expected a string with minimum length",
        "min_length",
        "string_below_min_length",
    ),
    "too_long": (
        "array too long. Expected an array with maximum length",
        "max_length",
        "array_above_max_length",
    ),
    "too_short": (
        "array too short. Expected an array with minimum length",
        "min_length",
        "array_below_min_length",
    ),
    "less_than_equal": (
        "number above maximum value. Expected a value less than or equal to",
        "le",
        "number_above_max_value",
    ),
    "greater_than_equal": (
        "number below minimum value. Expected a value greater than or equal to",
        "ge",
        "number_below_min_value",
    ),
}


def validation_error(exc: RequestValidationError) -> BadRequest:
    errors = exc.errors()
    # a union reports one error per member: the one past the type check says what is wrong
    err = next((e for e in errors if not str(e.get("type", "")).endswith("_type")), errors[0])
    param = _param(tuple(err.get("loc", ())), exc.body)
    kind = err.get("type", "")
    if kind == "invalid_json_value":  # api/body.py's scan: the path is inside the part it scanned
        path = err.get("ctx", {}).get("path") or ""
        param = ".".join(p for p in (param, path) if p).replace(".[", "[") or None
    if kind == "json_invalid" or (kind == "missing" and param is None):
        return BadRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            "using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    if kind == "missing":
        return BadRequest(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind == "extra_forbidden":
        return BadRequest(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type", "list_type"):
        return BadRequest(
            f"Invalid type for '{param}': {err.get('msg', 'wrong type')}.", param=param, code="invalid_type"
        )
    if kind in _LIMITS:  # in OpenAI's words (never echoing the text itself)
        what, bound, code = _LIMITS[kind]
        given, limit = err.get("input"), err.get("ctx", {}).get(bound, "?")
        if bound in ("le", "ge"):
            number = "decimal" if isinstance(given, float) or isinstance(limit, float) else "integer"
            what, code, got = what.replace("number", number), code.replace("number", number), repr(given)
            got = got if len(got) <= 40 else got[:37] + "..."
        else:
            got = f"length {len(given) if hasattr(given, '__len__') else '?'}"
        message = f"Invalid '{param}': {what} {limit}, but got {got} instead."
        return BadRequest(message, param=param, code=code)
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return BadRequest(f"Invalid value for '{param}': {msg}", param=param, code="invalid_value")


def install(app: FastAPI) -> None:
    """Every error leaves the API in OpenAI's envelope with OpenAI's status."""

    async def _translated(_: Request, exc: Exception) -> JSONResponse:
        err = api_error(exc)
        return JSONResponse(err.body(), status_code=err.status)

    for kind in TRANSLATED:
        app.add_exception_handler(kind, _translated)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error(exc)
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err: APIError = NotFound(f"Invalid URL ({request.method} {request.url.path})")
        elif exc.status_code == 405:
            err = BadRequest(f"Invalid method for URL ({request.method} {request.url.path})")
        else:
            err = BadRequest(str(exc.detail))
            err.status = exc.status_code
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        # only errors raised outside CatchAll (in the middleware around it) get here
        log.error("unhandled error", exc_info=exc)
        return crashed()


def crashed() -> JSONResponse:
    error = ServerError(CRASHED)
    return JSONResponse(error.body(), status_code=error.status)


class CatchAll:
    """An unhandled error answers a 500 in OpenAI's envelope and goes no further.

    Starlette's ServerErrorMiddleware sends its 500 and then re-raises, and uvicorn closes the
    connection of every request whose app raised; caught here, the connection stays open for the
    client's next request. An error after the response started still closes it: a half-sent
    response can only be ended that way.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if started:
                raise
            # the id lets an operator find this trace from the answer the client got
            log.exception("unhandled error (request %s)", scope.get(logs.REQUEST_ID_KEY))
            await crashed()(scope, receive, send)
