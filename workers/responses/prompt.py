"""From a response's items to a chat-completions request: the context as chat messages, cut to
fit the model's window (`truncation: auto`) or refused (`disabled`), and the response's settings."""

from __future__ import annotations

import json
from typing import Any

from core.config import ModelEndpoint
from core.store import ResponseRow
from core.tokens import tokens
from workers.responses.tools import definitions
from workers.tools.file_search import excerpts

ROLES = {"developer": "system"}  # the chat role of an input role (not every server knows "developer")


class ContextTooLong(Exception):
    """The context does not fit the model's window and truncation is disabled."""


def _text(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "refusal"):
            parts.append(part.get("text") or part.get("refusal") or "")
        elif kind == "input_file":
            parts.append(f"[file {part.get('filename') or part.get('file_id') or ''}]")
    return "\n".join(parts)


def _content(content: Any) -> Any:
    """A user message's chat content: a string, or parts when it carries images."""
    if isinstance(content, str) or not any(p.get("type") == "input_image" for p in content or []):
        return _text(content)
    out: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "input_image" and part.get("image_url"):
            # a file_id's image arrives here as a data: URL (workers/images.py, before the loop)
            detail = {"detail": part["detail"]} if part.get("detail") else {}
            out.append({"type": "image_url", "image_url": {"url": part["image_url"]} | detail})
        elif part.get("type") != "input_image":
            out.append({"type": "text", "text": _text([part])})
    return out


def chat_messages(items: list[dict[str, Any]], null_content: bool = False) -> list[dict[str, Any]]:
    """Chat messages for input and output items, in order: consecutive function calls become one
    assistant message with several tool calls, each output a `tool` message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            content = _content(item.get("content")) if role == "user" else _text(item.get("content"))
            messages.append({"role": ROLES.get(role, role), "content": content})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments") or ""},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # its text, or its other calls
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append(
                    {"role": "assistant", "content": None if null_content else "", "tool_calls": [call]}
                )
        elif kind in BUILT_IN_ITEMS:  # a call the worker ran: the model's call, then what it read
            name, arguments, result = _built_in(item)
            call = {"id": item["id"], "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append(
                    {"role": "assistant", "content": None if null_content else "", "tool_calls": [call]}
                )
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": result})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item["call_id"],
                    "content": output if isinstance(output, str) else _text(output),
                }
            )
        # reasoning items (and anything else) are the model's own notes: not replayed
    return messages


BUILT_IN_ITEMS = ("code_interpreter_call", "file_search_call")


def _built_in(item: dict[str, Any]) -> tuple[str, str, str]:
    """(function name, arguments, result) of a recorded built-in call, as the model saw it (the
    search's results without citation markers: nothing in a later response resolves them)."""
    if item["type"] == "code_interpreter_call":
        outputs = item.get("outputs") or []
        logs = "\n".join(o.get("logs") or "" for o in outputs if o.get("type") == "logs")
        logs += "".join("\n[image shown to the user]" for o in outputs if o.get("type") == "image")
        return "code_interpreter", json.dumps({"code": item.get("code") or ""}), logs or "(no output)"
    results = item.get("results") or []
    found = [(r.get("filename") or "", r.get("score") or 0.0, r.get("text") or "") for r in results]
    queries = item.get("queries") or []
    arguments = json.dumps({"query": queries[0] if queries else "", "queries": queries[1:]})
    return "file_search", arguments, excerpts(found, None)


IMAGE_TOKENS = 85  # an image part, whatever its URL's length (a data: URL is not text)


def size(message: dict[str, Any], model: str = "") -> int:
    """The message's tokens as its JSON, in the model's encoding where it is known, else about
    four characters a token (core/tokens.py)."""
    content = message.get("content")
    images = 0
    if isinstance(content, list):  # an image counts as one at low detail, whatever its URL's length
        images = sum(1 for p in content if p.get("type") == "image_url")
        message = message | {"content": [p for p in content if p.get("type") != "image_url"]}
    return tokens(json.dumps(message, ensure_ascii=False), model) + 4 + IMAGE_TOKENS * images


def fit(
    messages: list[dict[str, Any]], budget: int, truncation: str, model: str = ""
) -> list[dict[str, Any]]:
    """The newest messages that fit `budget` tokens (`auto`), never starting with a tool result
    whose call was dropped; ContextTooLong when they do not fit and truncation is `disabled`."""
    sizes = [size(m, model) for m in messages]
    if sum(sizes) <= budget:
        return messages
    if truncation != "auto":
        raise ContextTooLong(f"the input is about {sum(sizes)} tokens; the model's window leaves {budget}")
    kept, total = len(messages), 0
    while kept > 0 and total + sizes[kept - 1] <= budget:
        kept -= 1
        total += sizes[kept]
    out = messages[kept:]
    while out and out[0]["role"] == "tool":
        out = out[1:]
    if not out:
        raise ContextTooLong("even the newest input item does not fit the model's window")
    return out


def tools_of(response: ResponseRow, built_in: bool = True) -> list[dict[str, Any]]:
    """Chat-completions `tools`: the response's function tools, then its built-in ones (unless
    `built_in` is false: its max_tool_calls are spent)."""
    out = []
    for tool in response.tools or []:
        if tool.get("type") == "function":
            function = {
                k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None
            }
            out.append({"type": "function", "function": function})
    return out + (definitions(response) if built_in else [])


def request_for(
    response: ResponseRow,
    messages: list[dict[str, Any]],
    endpoint: ModelEndpoint,
    limit: int,
    first_round: bool = True,
    built_in: bool = True,
) -> dict[str, Any]:
    """The chat-completions request: the messages and the response's settings. A forced tool is
    forced in the first round only (after its result the model answers freely), and the built-in
    tools are left out once `built_in` is false."""
    req: dict[str, Any] = {"model": response.model, "messages": messages, endpoint.token_limit_field: limit}
    if response.temperature is not None:
        req["temperature"] = response.temperature
    if response.top_p is not None:
        req["top_p"] = response.top_p
    fmt = (response.text_format or {}).get("format") or {}
    if fmt.get("type") == "json_object":
        req["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        req["response_format"] = {"type": "json_schema", "json_schema": schema}
    if effort := (response.reasoning or {}).get("effort"):
        req["reasoning_effort"] = effort
    tools = tools_of(response, built_in)
    if tools:
        req["tools"] = tools
        choice = (response.tool_choice or "auto") if first_round else "auto"
        if isinstance(choice, dict):  # a function by name, or a built-in tool by its type
            choice = {"type": "function", "function": {"name": choice.get("name") or choice.get("type")}}
        req["tool_choice"] = choice
        if response.parallel_tool_calls is False:
            req["parallel_tool_calls"] = False
    return req


def instructions(response: ResponseRow) -> list[dict[str, Any]]:
    return [{"role": "system", "content": response.instructions}] if response.instructions else []
