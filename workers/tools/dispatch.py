"""The tools a worker runs itself (code_interpreter, file_search), seen from the run loop.

The model gets each enabled built-in tool as a function; a round whose calls name one is
executed here and recorded as a `tool_calls` step whose calls carry the tool's own type,
then the run goes on to the next model round without waiting for the client.
"""

from __future__ import annotations

from typing import Any

from core.store import Claimed, MessageRow, RunRow
from workers.context import Context, publish
from workers.streaming import builtin_delta
from workers.tools import code_interpreter
from workers.tools.code_interpreter import ToolUnavailable

__all__ = [
    "ToolUnavailable",
    "builtin_tools",
    "tool_definitions",
    "run_tool",
    "pending_images",
    "annotations_of",
    "model_output",
]

ALIASES = {"retrieval": "file_search"}  # the v1 name of file_search


def builtin_tools(run: RunRow) -> frozenset[str]:
    """The built-in tools enabled on the run, by the function name the model calls."""
    kinds = {ALIASES.get(kind, kind) for t in run.tools or [] if isinstance(kind := t.get("type"), str)}
    return frozenset(kinds & {"code_interpreter", "file_search"})


def _file_search_tool() -> dict[str, Any]:
    from workers.tools import file_search

    return file_search.file_search_tool()


def tool_definitions(run: RunRow) -> list[dict[str, Any]]:
    """Chat-completions `tools`: the run's functions, then a function per built-in tool."""
    functions = [t for t in run.tools or [] if t.get("type") == "function"]
    builtin = builtin_tools(run)
    if "code_interpreter" in builtin:
        functions.append(code_interpreter.TOOL)
    if "file_search" in builtin:
        functions.append(_file_search_tool())
    return functions


async def run_tool(
    ctx: Context, run: RunRow, claimed: Claimed, call: dict[str, str], index: int, step_id: str
) -> dict[str, Any]:
    """Execute one built-in call (`index` in its round, in step `step_id`); the step's recorded
    tool call, outputs filled. A streaming run sees the input, then the results, as step deltas."""
    if call["name"] == "code_interpreter":
        if run.stream:  # the code is known now: show it before it runs
            code = {"input": code_interpreter.code_of(call["arguments"]), "outputs": []}
            await publish(
                ctx,
                run,
                [
                    builtin_delta(
                        step_id,
                        index,
                        {"id": call["id"], "type": "code_interpreter", "code_interpreter": code},
                    )
                ],
            )
        if ctx.storage is None:
            raise ToolUnavailable("code_interpreter needs file storage, and this worker has none.")
        recorded = await code_interpreter.run_code(
            ctx.sandboxes, ctx.engine, ctx.storage, run, claimed.thread, call
        )
        outputs = [{"index": i} | item for i, item in enumerate(recorded["code_interpreter"]["outputs"])]
        shown = {"type": "code_interpreter", "code_interpreter": {"outputs": outputs}}
    else:
        from workers.tools import file_search

        # what the model reads back is rebuilt from the recorded results (model_output), every round
        _, found = await file_search.file_search(ctx.engine, ctx.settings, run, call["arguments"])
        recorded = {"id": call["id"]} | found
        shown = recorded
    if run.stream:
        await publish(ctx, run, [builtin_delta(step_id, index, shown)])
    return recorded


def model_output(call: dict[str, Any], ordinal: int = 0) -> str:
    """What the model reads back from a recorded built-in call, when the run's rounds are replayed
    (`ordinal`: which file_search call of the run this is, for its citation markers)."""
    if call.get("type") == "code_interpreter":
        return code_interpreter.model_output(call)
    from workers.tools import file_search

    return file_search.model_output(call, ordinal)


def _shown_images(run: RunRow, thread: list[MessageRow]) -> set[str]:
    return {
        part["image_file"]["file_id"]
        for m in thread
        if m.run_id == run.id
        for part in m.content or []
        if part.get("type") == "image_file"
    }


def pending_images(run: RunRow, claimed: Claimed) -> list[dict[str, Any]]:
    """image_file parts for the figures this run's code drew that no message of the run showed
    yet: the next message opens with them."""
    if "code_interpreter" not in builtin_tools(run):
        return []
    shown = _shown_images(run, claimed.thread)
    return [
        {"type": "image_file", "image_file": {"file_id": item["image"]["file_id"]}}
        for step in claimed.steps
        for call in (step.step_details or {}).get("tool_calls", [])
        for item in (call.get("code_interpreter") or {}).get("outputs", [])
        if item["type"] == "image" and item["image"]["file_id"] not in shown
    ]


async def annotations_of(ctx: Context, run: RunRow, claimed: Claimed, text: str) -> list[dict[str, Any]]:
    """A message's text annotations: file_path for `sandbox:/mnt/data/...` links to files this
    run's code wrote, file_citation for the markers of file_search results."""
    builtin = builtin_tools(run)
    found: list[dict[str, Any]] = []
    if "code_interpreter" in builtin:
        found += await code_interpreter.attachments_of(ctx.engine, run.id, text)
    if "file_search" in builtin:
        from workers.tools import citations

        found += citations.annotate(text, claimed.steps)
    return sorted(found, key=lambda a: a["start_index"])
