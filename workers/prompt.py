"""From a run and its thread to a chat-completions request: its messages, truncated to fit, and
the run's settings (`request_for`).

The thread's earlier messages come first (the oldest dropped when the budget is short); then
the rounds of this run so far, rebuilt from its run steps: the assistant's text and tool calls,
followed by one `tool` message per submitted output, in call order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.config import ModelEndpoint
from core.store import MessageRow, RunRow, StepRow
from core.tokens import tokens
from workers.images import Image, note, url_name
from workers.tools import dispatch as tools


class PromptTooLong(Exception):
    """Even the newest message does not fit the prompt budget."""


MESSAGE_TOKENS = 4  # a message's role and separators, beside its content
IMAGE_TOKENS = 85  # an image at low detail, as OpenAI counts it


def _content(
    role: str,
    content: list[dict[str, Any]] | None,
    model: str = "",
    images: Mapping[str, Image] | None = None,
    vision: bool = True,
) -> tuple[Any, int]:
    """A message's chat content and its tokens. A user's images go as image_url parts (an
    uploaded file inline, from `images`), or as a text note to an endpoint without `vision`."""
    parts: list[dict[str, Any]] = []
    texts: list[str] = []

    def text(value: str) -> None:
        texts.append(value)
        parts.append({"type": "text", "text": value})

    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            text(part["text"]["value"])
        elif kind == "image_url" and role == "user":
            if vision:
                parts.append({"type": "image_url", "image_url": part["image_url"]})
            else:
                text(note(url_name(part["image_url"].get("url") or "")))
        elif kind == "image_file" and role == "user":
            ref = part["image_file"]
            image = (images or {}).get(ref["file_id"])
            if vision and image is not None and image.url is not None:
                shown = {"url": image.url} | ({"detail": ref["detail"]} if ref.get("detail") else {})
                parts.append({"type": "image_url", "image_url": shown})
            else:  # no vision, or a file deleted since: the model is told an image was there
                text(note(image.name if image is not None else ref["file_id"]))
    used = sum(tokens(t, model) for t in texts) + MESSAGE_TOKENS + IMAGE_TOKENS * (len(parts) - len(texts))
    if len(parts) == len(texts):
        return "\n".join(texts), used
    return parts, used


def _replayed(call: dict[str, Any], ordinal: int) -> dict[str, str]:
    """A recorded tool call as the model made it: id, function name, arguments, and its output
    (`ordinal`: how many file_search calls of the run came before it)."""
    kind = call.get("type")
    if kind == "function":
        f = call["function"]
        return {
            "id": call["id"],
            "name": f["name"],
            "arguments": f["arguments"],
            "output": f.get("output") or "",
        }
    arguments = json.dumps({"code": call[kind]["input"]}) if kind == "code_interpreter" else "{}"
    return {
        "id": call["id"],
        "name": kind,
        "arguments": arguments,
        "output": tools.model_output(call, ordinal),
    }


def run_rounds(
    run_id: str, thread: list[MessageRow], steps: list[StepRow], null_content: bool = False
) -> list[dict[str, Any]]:
    """This run's earlier rounds as chat messages, from its message_creation and tool_calls steps.
    A round with no text replays its content as "" (most servers refuse the null that OpenAI's
    spec allows), or as null when the endpoint takes it (`null_content`)."""
    texts = {m.id: _content(m.role, m.content)[0] for m in thread if m.run_id == run_id}
    out: list[dict[str, Any]] = []
    open_text = False  # the previous step was this round's text, awaiting its tool calls
    searches = 0
    for step in steps:
        details = step.step_details or {}
        if step.type == "message_creation":
            message_id = details.get("message_creation", {}).get("message_id")
            out.append({"role": "assistant", "content": texts.get(message_id, "")})
            open_text = True
            continue
        calls = []
        for c in details.get("tool_calls", []):
            calls.append(_replayed(c, searches))
            searches += c.get("type") == "file_search"
        wire_calls = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ]
        if open_text:
            out[-1]["tool_calls"] = wire_calls
        else:
            out.append(
                {"role": "assistant", "content": None if null_content else "", "tool_calls": wire_calls}
            )
        open_text = False
        for c in calls:
            out.append({"role": "tool", "tool_call_id": c["id"], "content": c["output"]})
    return out


def build_prompt(
    run: RunRow,
    thread: list[MessageRow],
    steps: list[StepRow],
    context_window: int,
    answer_limit: int,
    null_content: bool = False,
    images: Mapping[str, Image] | None = None,
    vision: bool = True,
) -> list[dict[str, Any]]:
    """System instructions, the thread's newest messages that fit, then this run's rounds. The
    prompt leaves `answer_limit` tokens of the window for the answer, and counts the tool
    definitions the request carries. `images`: the uploaded images the messages show
    (workers/images.py), for an endpoint with `vision`."""
    system = [{"role": "system", "content": run.instructions}] if run.instructions else []
    rounds = run_rounds(run.id, thread, steps, null_content)
    # counted in the model's own tokens where they are known (core/tokens.py)
    used = tokens(run.instructions, run.model) + MESSAGE_TOKENS if run.instructions else 0
    used += sum(tokens(json.dumps(r), run.model) for r in rounds)
    definitions = tools.tool_definitions(run)
    used += tokens(json.dumps(definitions), run.model) if definitions else 0
    history = [m for m in thread if m.run_id != run.id]
    strategy = run.truncation_strategy or {"type": "auto"}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        history = history[-int(strategy["last_messages"]) :]
    budget = min(context_window - answer_limit, run.max_prompt_tokens or context_window)
    kept: list[dict[str, Any]] = []
    for message in reversed(history):
        content, size = _content(message.role, message.content, run.model, images, vision)
        if used + size > budget:
            break
        kept.append({"role": message.role, "content": content})
        used += size
    if history and not kept:
        raise PromptTooLong(f"the newest message does not fit in {budget} prompt tokens")
    kept.reverse()
    return system + kept + rounds


def request_for(
    run: RunRow, messages: list[dict[str, Any]], endpoint: ModelEndpoint, limit: int, first_round: bool = True
) -> dict[str, Any]:
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
    functions = tools.tool_definitions(run)
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
