"""Log lines (core/logs.py): the text format as it always was, and what a JSON line holds."""

from __future__ import annotations

import json
import logging
import sys
import time

from core import logs


def test_text_lines_are_as_before() -> None:
    """TextFormatter formats a second's time once: its lines are logging.Formatter(TEXT)'s."""
    ours, plain = logs.TextFormatter(), logging.Formatter(logs.TEXT)
    now = time.time()
    for created in (now, now + 0.5, now + 1.25, now + 3600.999):
        record = logging.LogRecord("assistd.x", logging.WARNING, __file__, 1, "run %s: odd", ("run_1",), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == plain.format(record)


def formatted(record: logging.LogRecord) -> dict[str, object]:
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)  # type: ignore[no-any-return]


def test_a_json_line_outside_requests_and_runs() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord(
            "assistd.x", logging.ERROR, __file__, 1, "failed %s", ("twice",), sys.exc_info()
        )
    line = formatted(record)
    assert set(line) == {"time", "level", "logger", "message", "error"}
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "assistd.x", "failed twice")
    assert "ValueError: bad" in str(line["error"])


def test_a_json_line_under_a_run_and_a_request() -> None:
    scope = {"headers": [(b"x-client-request-id", b"\x01" + b"a" * 10)], logs.REQUEST_ID_KEY: "req_1"}
    request, job = logs.REQUEST.set(scope), logs.JOB.set(logs.job("resp_1", "p"))
    try:
        line = formatted(logging.LogRecord("assistd.x", logging.INFO, __file__, 1, "m", (), None))
    finally:
        logs.REQUEST.reset(request)
        logs.JOB.reset(job)
    # a client id that is not printable ASCII is left out; no route before the router matched
    assert line["request_id"] == "req_1" and line["response_id"] == "resp_1" and line["project"] == "p"
    assert "client_request_id" not in line and "route" not in line
