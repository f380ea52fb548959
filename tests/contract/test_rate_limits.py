"""Rate limits per project through the official SDK, in both modes: OpenAI's 429 and headers,
the SDK's own retry honouring retry-after, tokens refusing new runs and responses but not
reads, other projects untouched, and nothing at all without limits (the default)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from openai import OpenAI, RateLimitError

from tests.conftest import (
    KEY_A,
    KEY_B,
    ScriptedModel,
    Server,
    start_distributed,
    start_embedded,
    stop,
)
from tests.procs import API_KEYS, REDIS_URL

KEY_TOKENS = "sk-test-project-tokens"
WINDOW = 4  # seconds: short, so the SDK's retry waits little; long enough for a run to end in it
LIMITS = {
    "ASSISTD_API_KEYS": f"{API_KEYS},{KEY_TOKENS}=proj_tokens",
    "ASSISTD_RATE_LIMIT_RPM": "5",  # every project's (proj_a's)...
    "ASSISTD_RATE_LIMITS": json.dumps({"proj_b": {"rpm": 0}, "proj_tokens": {"rpm": 0, "tpm": 1}}),
    "ASSISTD_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
}
RESET = re.compile(r"(\d+ms|(\d+m)?\d+(\.\d+)?s)")


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def limited(
    request: pytest.FixtureRequest, model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"limited-{request.param}")
    extra = LIMITS | {"ASSISTD_FILES_DIR": str(tmp)}
    if request.param == "embedded":
        server = start_embedded(model_server, tmp, extra=extra)
    else:
        server = start_distributed(model_server, tmp, workers=1, extra=extra)
    yield server
    stop(server.procs)


def ratelimit_headers(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("x-ratelimit-")}


def redis_keys(server: Server, project: str = "*") -> list[bytes]:
    """The rate limit keys of `project` in a distributed server's namespace."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return list(client.scan_iter(match=f"{server.env['ASSISTD_REDIS_NAMESPACE']}:ratelimit:*{project}*"))
    finally:
        client.close()


def test_the_sixth_request_is_refused_and_the_sdk_retries_after_it(limited: Server) -> None:
    client = limited.client(KEY_A, max_retries=0)
    for n in range(5):
        answer = client.models.with_raw_response.list()
        sent = ratelimit_headers(answer.headers)
        assert sent["x-ratelimit-limit-requests"] == "5"
        assert sent["x-ratelimit-remaining-requests"] == str(4 - n)
        assert RESET.fullmatch(sent["x-ratelimit-reset-requests"]), sent
        assert "x-ratelimit-limit-tokens" not in sent  # no token limit for this project
    with pytest.raises(RateLimitError) as refused:
        client.models.list()
    refused_at = time.monotonic()
    error, headers = refused.value, refused.value.response.headers
    assert (error.type, error.code, error.param) == ("requests", "rate_limit_exceeded", None)
    assert "Limit 5, Used 5, Requested 1. Please try again in " in error.message, error.message
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 0 < int(headers["retry-after"]) <= WINDOW
    wait = int(headers["retry-after-ms"]) / 1000
    assert 0 < wait <= WINDOW

    # another project is not affected, and one without limits gets no headers
    other = limited.client(KEY_B, max_retries=0).models.with_raw_response.list()
    assert other.http_response.status_code == 200 and not ratelimit_headers(other.headers)
    if limited.mode == "distributed":
        assert redis_keys(limited, "proj_a") and not redis_keys(limited, "proj_b")

    # the SDK's own retry waits what retry-after-ms says (its backoff would be under a second,
    # and would give up inside the window), then gets through in the next window
    listed = limited.client(KEY_A, max_retries=2).models.with_raw_response.list()
    assert listed.http_response.status_code == 200
    assert time.monotonic() - refused_at >= wait - 0.1


def test_a_project_past_its_tokens_can_read_but_not_spend(limited: Server) -> None:
    client = limited.client(KEY_TOKENS, max_retries=0)
    assistant = client.beta.assistants.create(model="echo")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "spend"}]}
    )
    assert run.status == "completed" and run.usage is not None and run.usage.total_tokens >= 1
    with pytest.raises(RateLimitError) as refused:
        client.beta.threads.runs.create(run.thread_id, assistant_id=assistant.id)
    error, headers = refused.value, refused.value.response.headers
    assert (error.type, error.code) == ("tokens", "rate_limit_exceeded")
    assert headers["x-ratelimit-limit-tokens"] == "1" and headers["x-ratelimit-remaining-tokens"] == "0"
    assert 0 < int(headers["retry-after-ms"]) <= WINDOW * 1000
    with pytest.raises(RateLimitError):
        client.responses.create(model="echo", input="spend more")
    # reading goes on, with the token headers (and no request ones: its RPM is off)
    messages = client.beta.threads.messages.with_raw_response.list(run.thread_id)
    assert messages.http_response.status_code == 200
    sent = ratelimit_headers(messages.headers)
    assert sent["x-ratelimit-remaining-tokens"] == "0" and "x-ratelimit-limit-requests" not in sent
    # another project spends on
    other = limited.client(KEY_B, max_retries=0)
    assert other.responses.create(model="echo", input="mine").status == "completed"


def test_no_limits_no_headers(server: Server, client: OpenAI) -> None:
    """The default: no limit is set, so no request is counted (no header, no Redis key)."""
    answer = client.beta.assistants.with_raw_response.list()
    assert answer.http_response.status_code == 200 and not ratelimit_headers(answer.headers)
    if server.mode == "distributed":
        assert not redis_keys(server)
