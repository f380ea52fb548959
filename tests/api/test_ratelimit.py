"""The API's rate limit pieces in process (api/ratelimit.py): OpenAI's reset format, the routes
that spend tokens, the headers, and no Limiter at all without limits."""

from __future__ import annotations

from typing import Any

import pytest

from api.ratelimit import Limits, Usage, duration, headers, limiter, refusal, retry_after, spends_tokens
from core.config import Settings


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.0201, "21ms"), (0.999, "999ms"), (1, "1s"), (1.5, "1.5s"), (59.25, "59.25s"),
     (60, "1m0s"), (360, "6m0s"), (3600, "1h0m0s"), (3723.5, "1h2m3.5s")],
)  # fmt: skip
def test_duration_as_openai_writes_it(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("method", "path", "spends"),
    [
        ("POST", "/v1/responses", True),
        ("POST", "/v1/threads/runs", True),
        ("POST", "/v1/threads/thread_1/runs", True),
        ("POST", "/v1/threads/thread_1/runs/run_1/submit_tool_outputs", True),
        ("POST", "/v1/threads/thread_1/runs/run_1/cancel", False),
        ("POST", "/v1/threads/thread_1/runs/run_1", False),
        ("GET", "/v1/threads/thread_1/runs", False),
        ("POST", "/v1/responses/input_tokens", False),
        ("POST", "/v1/threads", False),
        ("POST", "/v1/threads/thread_1/messages", False),
    ],
)
def test_what_spends_tokens(method: str, path: str, spends: bool) -> None:
    scope: dict[str, Any] = {"method": method, "path": path}
    assert spends_tokens(scope) is spends


def test_headers_and_refusals() -> None:
    usage = Usage(requests=6, requests_reset=1.5, tokens=120, tokens_reset=30)
    sent = dict(headers(Limits(rpm=5, tpm=100), usage))
    assert sent == {
        b"x-ratelimit-limit-requests": b"5",
        b"x-ratelimit-remaining-requests": b"0",
        b"x-ratelimit-reset-requests": b"1.5s",
        b"x-ratelimit-limit-tokens": b"100",
        b"x-ratelimit-remaining-tokens": b"0",
        b"x-ratelimit-reset-tokens": b"30s",
    }
    refused = refusal("p", Limits(rpm=5, tpm=0), usage, spending=False)
    assert refused is not None and refused[0].type == "requests" and refused[1] == 1.5
    assert "Limit 5, Used 5, Requested 1. Please try again in 1.5s." in refused[0].message
    assert refusal("p", Limits(rpm=0, tpm=100), usage, spending=False) is None  # reading goes on
    tokens = refusal("p", Limits(rpm=0, tpm=100), usage, spending=True)
    assert tokens is not None and tokens[0].type == "tokens" and tokens[0].code == "rate_limit_exceeded"
    assert dict(retry_after(1.2)) == {b"retry-after": b"2", b"retry-after-ms": b"1200"}
    assert dict(retry_after(0)) == {b"retry-after": b"1", b"retry-after-ms": b"1"}  # 0 means none to the SDK


def test_no_limiter_without_limits() -> None:
    assert limiter(Settings()) is None
    assert limiter(Settings(rate_limit_rpm=1)) is not None
