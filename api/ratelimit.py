"""The API's side of the rate limits (core/quotas.py): the check a limited project's /v1 requests
pass in the Gate (api/limits.py), OpenAI's x-ratelimit-* headers, and its 429.

Requests count every authenticated /v1 request; tokens are counted by the workers as the model
reports them, and a project past its tokens may still read, but not start what spends more:
create a run or a response, or submit tool outputs (the run then calls the model again).
Without any limit configured the Gate holds no Limiter, so nothing here runs.
"""

from __future__ import annotations

import logging
import math

from starlette.types import Scope

from api.errors import RateLimited
from core.config import Settings
from core.quotas import Counters, Limits, Quotas, Usage
from core.redis_counters import counters

log = logging.getLogger("assistd.api")

RawHeaders = list[tuple[bytes, bytes]]


def spends_tokens(scope: Scope) -> bool:
    """POST /v1/responses, /v1/threads/runs, /v1/threads/{id}/runs and its submit_tool_outputs."""
    if scope["method"] != "POST":
        return False
    parts = str(scope["path"]).rstrip("/").split("/")[2:]  # past "" and "v1"
    if parts in (["responses"], ["threads", "runs"]):
        return True
    return (
        len(parts) >= 3
        and parts[0] == "threads"
        and parts[2] == "runs"
        and (len(parts) == 3 or (len(parts) == 5 and parts[4] == "submit_tool_outputs"))
    )


def duration(seconds: float) -> str:
    """A span as OpenAI's x-ratelimit-reset-* headers write it: "20ms", "1.5s", "6m0s", "1h0m0s"."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    text = f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


def headers(limits: Limits, usage: Usage) -> RawHeaders:
    out: RawHeaders = []
    if limits.rpm:
        out += [
            (b"x-ratelimit-limit-requests", str(limits.rpm).encode()),
            (b"x-ratelimit-remaining-requests", str(max(0, limits.rpm - usage.requests)).encode()),
            (b"x-ratelimit-reset-requests", duration(usage.requests_reset).encode()),
        ]
    if limits.tpm:
        out += [
            (b"x-ratelimit-limit-tokens", str(limits.tpm).encode()),
            (b"x-ratelimit-remaining-tokens", str(max(0, limits.tpm - usage.tokens)).encode()),
            (b"x-ratelimit-reset-tokens", duration(usage.tokens_reset).encode()),
        ]
    return out


def refusal(project: str, limits: Limits, usage: Usage, spending: bool) -> tuple[RateLimited, float] | None:
    """The 429 a request gets, and the seconds to wait; None if it may go on."""
    if limits.rpm and usage.requests > limits.rpm:
        wait = usage.requests_reset
        message = (
            f"Rate limit reached for project {project} on requests per min (RPM): Limit {limits.rpm}, "
            f"Used {usage.requests - 1}, Requested 1. Please try again in {duration(wait)}."
        )
        return RateLimited(message, "requests"), wait
    if limits.tpm and spending and usage.tokens >= limits.tpm:
        wait = usage.tokens_reset
        message = (
            f"Rate limit reached for project {project} on tokens per min (TPM): Limit {limits.tpm}, "
            f"Used {usage.tokens}. Please try again in {duration(wait)}."
        )
        return RateLimited(message, "tokens"), wait
    return None


def retry_after(seconds: float) -> RawHeaders:
    """Both of the SDK's headers (it prefers retry-after-ms), never 0: the SDK takes 0 for none."""
    ms = max(1, math.ceil(seconds * 1000))
    return [(b"retry-after", str(math.ceil(ms / 1000)).encode()), (b"retry-after-ms", str(ms).encode())]


class Limiter:
    def __init__(self, quotas: Quotas, counters: Counters) -> None:
        self.quotas, self.counters = quotas, counters

    async def check(self, scope: Scope, project: str) -> tuple[RateLimited | None, RawHeaders]:
        """The 429 for this request if it is past a limit (None if not), and the headers that
        go on its answer (none for a project without limits)."""
        limits = self.quotas.of(project)
        if limits is None:
            return None, []
        try:
            usage = await self.counters.hit(project, request=bool(limits.rpm), tokens=bool(limits.tpm))
        except Exception as exc:
            # a limit is a guard, not a dependency: without its counts the API still serves
            log.warning("rate limit of project %s not checked: %r", project, exc)
            return None, []
        out = headers(limits, usage)
        refused = refusal(project, limits, usage, spends_tokens(scope))
        if refused is None:
            return None, out
        error, wait = refused
        return error, out + retry_after(wait)


def limiter(settings: Settings) -> Limiter | None:
    """The Gate's Limiter; None when no project has a limit (the default)."""
    quotas = Quotas(settings)
    return Limiter(quotas, counters(settings)) if quotas.any else None
