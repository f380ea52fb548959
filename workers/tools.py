"""The tools a worker runs itself (code_interpreter, file_search), seen from the run loop.

The model gets each enabled built-in tool as a function; a round whose calls name one is
executed here and recorded as a `tool_calls` step whose calls carry the tool's own type,
then the run goes on to the next model round without waiting for the client.
"""

from __future__ import annotations

import json
from typing import Any

from workers import code_interpreter
from workers.code_interpreter import ToolUnavailable

__all__ = ["ToolUnavailable", "builtin_tools", "tool_definitions", "run_tool", "message_extras", "model_output"]

ALIASES = {"retrieval": "file_search"}  # the v1 name of file_search


def builtin_tools(run: Any) -> frozenset[str]:
    """The built-in tools enabled on the run, by the function name the model calls."""
    kinds = {ALIASES.get(t.get("type"), t.get("type")) for t in run.tools or []}
    return frozenset(kinds & {"code_interpreter", "file_search"})


def _file_search_tool() -> dict[str, Any]:
    from workers import file_search

    return file_search.file_search_tool()


def tool_definitions(run: Any) -> list[dict[str, Any]]:
    """Chat-completions `tools`: the run's functions, then a function per built-in tool."""
    functions = [t for t in run.tools or [] if t.get("type") == "function"]
    builtin = builtin_tools(run)
    if "code_interpreter" in builtin:
        functions.append(code_interpreter.TOOL)
    if "file_search" in builtin:
        functions.append(_file_search_tool())
    return functions


async def run_tool(ctx: Any, run: Any, claimed: Any, call: dict[str, str], index: int, step_id: str) -> dict[str, Any]:
    """Execute one built-in call (`index` in its round, in step `step_id`); the step's recorded
    tool call, outputs filled."""
    from workers.runs import publish

    if call["name"] == "code_interpreter":
        if run.stream:  # the code is known now: show it before it runs
            announce = {"id": call["id"], "type": "code_interpreter",
                        "code_interpreter": {"input": code_interpreter.code_of(call["arguments"]), "outputs": []}}
            await publish(ctx, run, [_step_delta(step_id, announce, index)])
        return await code_interpreter.run_code(ctx.sandboxes, ctx.engine, ctx.storage, run, claimed.thread, call)
    from workers import file_search

    # what the model reads back is rebuilt from the recorded results (model_output), every round
    _, recorded = await file_search.file_search(ctx.engine, ctx.settings, run, call["arguments"])
    return {"id": call["id"]} | recorded


def _step_delta(step_id: str, call: dict[str, Any], index: int) -> tuple[str, str]:
    delta = {"step_details": {"type": "tool_calls", "tool_calls": [{"index": index} | call]}}
    return "thread.run.step.delta", json.dumps({"id": step_id, "object": "thread.run.step.delta", "delta": delta})


def model_output(call: dict[str, Any]) -> str:
    """What the model reads back from a recorded built-in call, when the run's rounds are replayed."""
    if call.get("type") == "code_interpreter":
        return code_interpreter.model_output(call)
    from workers import file_search

    return file_search.model_output(call)


def _shown_images(run: Any, thread: list[Any]) -> set[str]:
    return {part["image_file"]["file_id"] for m in thread if m.run_id == run.id
            for part in m.content or [] if part.get("type") == "image_file"}


async def message_extras(ctx: Any, run: Any, claimed: Any, text: str) -> dict[str, list[dict[str, Any]]]:
    """Content a round's message carries beyond its text: the images this run's code drew and
    no message showed yet, and annotations (file_path links, file_citation markers)."""
    builtin = builtin_tools(run)
    if not builtin:
        return {"images": [], "annotations": []}
    annotations: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    if "code_interpreter" in builtin:
        annotations += await code_interpreter.attachments_of(ctx.engine, run.id, text)
        shown = _shown_images(run, claimed.thread)
        for step in claimed.steps:
            for call in (step.step_details or {}).get("tool_calls", []):
                for item in (call.get("code_interpreter") or {}).get("outputs", []):
                    if item["type"] == "image" and item["image"]["file_id"] not in shown:
                        images.append({"type": "image_file", "image_file": {"file_id": item["image"]["file_id"]}})
    if "file_search" in builtin:
        from workers import citations

        annotations += citations.annotate(text, claimed.steps)
    annotations.sort(key=lambda a: a["start_index"])
    return {"images": images, "annotations": annotations}
