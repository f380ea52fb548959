"""What a model call used, counted for its project: the per-project token metric, and the
project's token window when it has a TPM limit (core/quotas.py; the API refuses new runs and
responses of a project past it).

Counted after each model call rather than once a run ends: a run of many rounds uses its tokens
as it goes, and a run that fails later has used them all the same.
"""

from __future__ import annotations

from typing import Any

from workers import metrics
from workers.context import Context, log


async def spend(ctx: Context, project: str, usage: dict[str, Any]) -> None:
    """Count a model call's usage (chat completions' prompt/completion/total_tokens); a call whose
    endpoint reported no usage counts nothing. Never fails the run."""
    if usage.get("prompt_tokens") is None:
        return
    metrics.PROJECT_TOKENS.labels(project, "prompt").inc(usage["prompt_tokens"])
    metrics.PROJECT_TOKENS.labels(project, "completion").inc(usage["completion_tokens"] or 0)
    if ctx.quotas is None or ctx.counters is None:  # no project has a limit
        return
    limits = ctx.quotas.of(project)
    if limits is None or not limits.tpm:  # nothing to count against: no round trip
        return
    total = usage.get("total_tokens") or usage["prompt_tokens"] + (usage["completion_tokens"] or 0)
    try:
        await ctx.counters.spend(project, total)
    except Exception as exc:
        log.warning("tokens of project %s not counted against its limit: %r", project, exc)
