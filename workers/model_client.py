"""The model's side of a run: which OpenAI-compatible endpoint serves which model, one client per
endpoint, how a failed call is retried, and what a failure means for the run."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpx2Client

from core.config import ModelEndpoint, Settings
from workers.streaming import CutShort

T = TypeVar("T")


class ModelClients:
    """`OPENAI_BASE_URL`/`OPENAI_API_KEY` serve every model not mapped in `model_endpoints`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, AsyncOpenAI] = {}
        self._endpoints: dict[str, ModelEndpoint] = {}  # by model name: a round asks several times

    def endpoint(self, model: str) -> ModelEndpoint:
        """The endpoint serving `model`, with its base URL and key filled in."""
        found = self._endpoints.get(model)
        if found is not None:
            return found
        s = self._settings
        ep = s.model_endpoints.get(model) or s.model_endpoints.get("*") or ModelEndpoint()
        found = ep.model_copy(
            update={
                "base_url": ep.base_url or s.openai_base_url or "https://api.openai.com/v1",
                "api_key": ep.api_key or s.openai_api_key or "none",
            }
        )
        if len(self._endpoints) >= 1024:  # model names are the callers' text: keep the memo bounded
            self._endpoints.clear()
        self._endpoints[model] = found
        return found

    def client(self, model: str) -> AsyncOpenAI:
        ep = self.endpoint(model)
        assert ep.base_url is not None and ep.api_key is not None
        client = self._clients.get(ep.base_url + ep.api_key)
        if client is None:
            # Hundreds of runs wait on one endpoint at once: keep that many connections alive
            # (the SDK keeps 100, and reconnecting costs more than the request).
            limits = httpx2.Limits(
                max_connections=2000, max_keepalive_connections=self._settings.worker_concurrency
            )
            http = (
                DefaultAioHttpClient if self._settings.model_http == "aiohttp" else DefaultAsyncHttpx2Client
            )
            client = AsyncOpenAI(
                base_url=ep.base_url,
                api_key=ep.api_key,
                max_retries=0,  # with_retries retries, and knows which failures to leave alone
                timeout=self._settings.model_timeout_seconds,
                http_client=http(limits=limits),
            )
            self._clients[ep.base_url + ep.api_key] = client
        return client

    def context_window(self, model: str) -> int:
        return self.endpoint(model).context_window or self._settings.context_window

    def answer_limit(self, model: str, asked: int | None) -> int:
        """The answer's token limit: the run's, else the endpoint's default, else the room the
        prompt leaves for the answer (never unlimited: an unbounded answer ties up the server)."""
        window = self.context_window(model)
        if asked:  # a limit past the window would leave the prompt no room at all
            return min(asked, window * 3 // 4)
        limit = self.endpoint(model).max_output_tokens or min(
            self._settings.completion_reserve_tokens, window // 4
        )
        return min(limit, window * 3 // 4)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


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


async def with_retries(
    send: Callable[[], Awaitable[T]],
    endpoint: ModelEndpoint,
    retries: int,
    may_retry: Callable[[], bool] = lambda: True,
) -> T:
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
_SECRET = re.compile(
    r"(?i)(bearer\s+\S+|\b(?:sk|pk|rk)-[\w*.-]+|[\w*-]*\*{3,}[\w*-]*|\b[A-Za-z0-9_-]{32,}\b)"
)


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
