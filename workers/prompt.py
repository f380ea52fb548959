"""From a run and its thread to chat-completions messages, truncated to fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.models import Message, Run


class PromptTooLong(Exception):
    """Even the newest message does not fit the prompt budget."""


@dataclass
class Prompt:
    messages: list[dict[str, Any]]
    estimated_tokens: int


def estimate_tokens(text: str) -> int:
    # about four characters a token for English; no tokenizer download is possible here
    return len(text) // 4 + 1


def _content(message: Message) -> tuple[Any, int]:
    parts: list[dict[str, Any]] = []
    texts: list[str] = []
    for part in message.content or []:
        if part.get("type") == "text":
            texts.append(part["text"]["value"])
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif part.get("type") == "image_url" and message.role == "user":
            parts.append({"type": "image_url", "image_url": part["image_url"]})
    tokens = sum(estimate_tokens(t) for t in texts) + 4 + 85 * (len(parts) - len(texts))
    if len(parts) == len(texts):
        return "\n".join(texts), tokens
    return parts, tokens


def build_prompt(run: Run, thread: list[Message], context_window: int) -> Prompt:
    """System instructions, then the thread's newest messages that fit the budget."""
    system = [{"role": "system", "content": run.instructions}] if run.instructions else []
    used = estimate_tokens(run.instructions) + 4 if run.instructions else 0
    strategy = run.truncation_strategy or {"type": "auto"}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        thread = thread[-int(strategy["last_messages"]) :]
    budget = min(context_window - (run.max_completion_tokens or 0), run.max_prompt_tokens or context_window)
    kept: list[dict[str, Any]] = []
    for message in reversed(thread):
        content, tokens = _content(message)
        if used + tokens > budget:
            break
        kept.append({"role": message.role, "content": content})
        used += tokens
    if thread and not kept:
        raise PromptTooLong(f"the newest message does not fit in {budget} prompt tokens")
    kept.reverse()
    return Prompt(system + kept, used)
