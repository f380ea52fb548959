"""The chat-completions request a run makes, how it is retried, and what a failed one means
for the run."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import openai

from core.config import ModelEndpoint
from core.store import RunRow
from workers.streaming import CutShort
from workers.tools.dispatch import tool_definitions

T = TypeVar("T")


def request_for(run: RunRow, messages: list[dict[str, Any]], endpoint: ModelEndpoint, limit: int,
                first_round: bool = True) -> dict[str, Any]:
    """Chat-completions arguments from the run's settings. A tool named in `tool_choice` is
    forced in the run's first round only: forcing it again after its result came back would make
    the model call it again and again, and the run would never answer."""
    req: dict[str, Any] = {"model": run.model, "messages": messages, endpoint.token_limit_field: limit}
    if run.temperature is not None:
        req["temperature"] = run.temperature
    if run.top_p is not None:
        req["top_p"] = run.top_p
    if isinstance(run.response_format, dict) and run.response_format.get("type") != "text":
        req["response_format"] = run.response_format
    if run.reasoning_effort:
        req["reasoning_effort"] = run.reasoning_effort
    functions = tool_definitions(run)
    if functions:
        req["tools"] = functions
        choice = run.tool_choice or "auto"
        if isinstance(choice, dict):
            if not first_round:
                choice = "auto"
            elif choice.get("type") != "function":  # a built-in tool, which the model sees as a function
                name = "file_search" if choice["type"] == "retrieval" else choice["type"]
                choice = {"type": "function", "function": {"name": name}}
        req["tool_choice"] = choice
        if run.parallel_tool_calls is False:
            req["parallel_tool_calls"] = False
    return req


def _retriable(exc: Exception, endpoint: ModelEndpoint) -> bool:
    if isinstance(exc, openai.APITimeoutError):
        return endpoint.retry_timeouts
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return isinstance(exc, (openai.APIConnectionError, CutShort))


def _delay(exc: Exception, attempt: int) -> float:
    """The endpoint's retry-after when it gives a short one, else 0.5 s doubling up to 8 s."""
    if isinstance(exc, openai.APIStatusError):
        try:
            after = float(str(exc.response.headers.get("retry-after", "")))
            if 0 <= after <= 60:
                return after
        except ValueError:
            pass
    return min(0.5 * 2.0**attempt, 8.0)


async def with_retries(send: Callable[[], Awaitable[T]], endpoint: ModelEndpoint, retries: int,
                       may_retry: Callable[[], bool] = lambda: True) -> T:
    """`send()`, again after a failure worth retrying, up to `retries` more times. A request that
    timed out is not retried unless the endpoint says so (see ModelEndpoint.retry_timeouts), nor
    is one whose answer was already partly published (`may_retry()` false)."""
    for attempt in range(retries + 1):
        try:
            return await send()
        except (openai.APIError, CutShort) as exc:
            if attempt == retries or not _retriable(exc, endpoint) or not may_retry():
                raise
            await asyncio.sleep(_delay(exc, attempt))
    raise AssertionError("unreachable")


# anything shaped like a credential: sk-... keys (masked or not), bearer tokens, long opaque tokens
_SECRET = re.compile(r"(?i)(bearer\s+\S+|\b(?:sk|pk|rk)-[\w*.-]+|[\w*-]*\*{3,}[\w*-]*|\b[A-Za-z0-9_-]{32,}\b)")


def redact(text: str) -> str:
    """The endpoint's words with anything key-shaped replaced: its errors may quote the
    operator's model key, which the run's caller must never see."""
    return _SECRET.sub("[redacted]", text)[:500]


def model_error(exc: Exception) -> tuple[str, str]:
    """OpenAI's last_error code and a message for a model call that failed (after retries)."""
    if isinstance(exc, CutShort):
        return "server_error", f"The model endpoint's answer ended before it was complete ({exc})."
    if isinstance(exc, openai.APITimeoutError):
        return "server_error", "The model endpoint did not answer in time."
    if not isinstance(exc, openai.APIStatusError):
        return "server_error", "The model endpoint could not be reached."
    status = exc.status_code
    if status in (401, 403):  # about the operator's credentials: not the caller's business
        return "server_error", f"The model endpoint refused the server's credentials ({status})."
    code = {429: "rate_limit_exceeded"}.get(status)
    if code is None:
        code = "invalid_prompt" if status in (400, 404, 413, 422) else "server_error"
    return code, f"The model endpoint answered {status}: {redact(exc.message)}"
