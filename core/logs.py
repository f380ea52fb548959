"""The `assistd` command's log lines: text (the default) or one JSON object a line, and what they
know of the request or the run they were written under.

The API's request layer (api/observe.py) and the worker's Runner set the two context variables
below. A line reads them only when it is written: a request or a run that logs nothing pays for a
ContextVar.set and nothing more.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The ASGI scope of the request being served: its id, project and route are read from it when a
# line is written (the project and the route are known only once the Gate and the router ran).
REQUEST: ContextVar[Mapping[str, Any] | None] = ContextVar("assistd_request", default=None)
REQUEST_ID_KEY = "assistd.request_id"  # where the request layer leaves the request's id
PROJECT_KEY = "assistd.project"  # where the Gate leaves the project of a checked key

# The run or response a worker is executing: ("run_id" or "response_id", its id, its project).
JOB: ContextVar[tuple[str, str, str | None] | None] = ContextVar("assistd_job", default=None)

CLIENT_ID_MAX = 512  # OpenAI's limit on X-Client-Request-Id (ASCII, at most 512 characters)


def job(job_id: str, project: str | None = None) -> tuple[str, str, str | None]:
    """JOB's value for a run's or a response's id (`resp_...`)."""
    return ("response_id" if job_id.startswith("resp_") else "run_id", job_id, project)


def client_request_id(scope: Mapping[str, Any]) -> str | None:
    """The X-Client-Request-Id the client sent, if it is printable ASCII within OpenAI's length."""
    for name, value in scope.get("headers", ()):
        if name == b"x-client-request-id":
            text: str = value.decode("latin-1")
            ok = len(text) <= CLIENT_ID_MAX and text.isascii() and text.isprintable()
            return text if ok else None
    return None


def route_template(scope: Mapping[str, Any]) -> str:
    """`/v1/threads/{thread_id}` for `/v1/threads/thread_abc`: the path with its parameters
    named (the label of the API's metrics, and the `route` of a request's lines)."""
    path: str = scope["path"]
    if path.startswith("/playground"):  # its static files, under one label
        return "/playground"
    if scope.get("route") is None:
        return "unmatched"
    for name, value in scope.get("path_params", {}).items():
        path = path.replace(f"/{value}", f"/{{{name}}}", 1)
    return path


def context() -> dict[str, Any]:
    """What this line was written under: the request's id, client id, project and route (the
    path template), or the run's or response's id and project."""
    out: dict[str, Any] = {}
    scope = REQUEST.get()
    if scope is not None:
        out["request_id"] = scope.get(REQUEST_ID_KEY)
        if client := client_request_id(scope):
            out["client_request_id"] = client
        if project := scope.get(PROJECT_KEY):
            out["project"] = project
        if scope.get("route") is not None:  # known once the router matched it
            out["route"] = route_template(scope)
    running = JOB.get()
    if running is not None:
        key, job_id, project = running
        out[key] = job_id
        if project:
            out.setdefault("project", project)
    return out


class TextFormatter(logging.Formatter):
    """TEXT, with the time's seconds formatted once a second rather than once a line (an access
    line is written per request: its cost is the API's)."""

    def __init__(self) -> None:
        super().__init__(TEXT)
        self._second, self._text = -1, ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:  # a race between threads only formats the same second twice
            self._text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the context above, the fields a line
    passes as `extra={"fields": {...}}`, and a traceback as `error`."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(context())
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def configure(level: str, fmt: str) -> None:
    """The root logger's one handler on stderr, in `fmt` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # What no line shows is not gathered (the logging documentation's "Optimization"): the
    # caller's file and line (a walk up the stack per line), the thread, the process.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # Python's warnings are printed as text otherwise: in JSON, every line must parse
    logging.captureWarnings(fmt == "json")
