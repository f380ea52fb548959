"""The chat-completions request a run makes, and what a failed one means for the run."""

from __future__ import annotations

from typing import Any

import openai
from sqlalchemy import Row

from workers.tools import tool_definitions


def request_for(run: Row[Any], messages: list[dict[str, Any]], forced: bool = True) -> dict[str, Any]:
    """Chat-completions arguments from the run's settings. A forced built-in tool is forced in
    the run's first round only (`forced`): forcing it again would never let the model answer."""
    req: dict[str, Any] = {"model": run.model, "messages": messages}
    if run.temperature is not None:
        req["temperature"] = run.temperature
    if run.top_p is not None:
        req["top_p"] = run.top_p
    if run.max_completion_tokens is not None:
        req["max_completion_tokens"] = run.max_completion_tokens
    if isinstance(run.response_format, dict) and run.response_format.get("type") != "text":
        req["response_format"] = run.response_format
    if run.reasoning_effort:
        req["reasoning_effort"] = run.reasoning_effort
    functions = tool_definitions(run)
    if functions:
        req["tools"] = functions
        choice = run.tool_choice or "auto"
        if isinstance(choice, dict) and choice.get("type") != "function":  # a built-in tool, forced
            name = "file_search" if choice["type"] == "retrieval" else choice["type"]
            choice = {"type": "function", "function": {"name": name}} if forced else "auto"
        req["tool_choice"] = choice
        if run.parallel_tool_calls is False:
            req["parallel_tool_calls"] = False
    return req


def model_error(exc: openai.APIError) -> tuple[str, str]:
    """OpenAI's last_error code and a message for a model call that failed (after retries)."""
    if not isinstance(exc, openai.APIStatusError):
        return "server_error", f"The model endpoint failed: {exc}"
    code = {429: "rate_limit_exceeded"}.get(exc.status_code)
    if code is None:
        code = "invalid_prompt" if exc.status_code in (400, 404, 413, 422) else "server_error"
    return code, f"The model endpoint answered {exc.status_code}: {exc.message}"
