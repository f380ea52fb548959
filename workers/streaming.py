"""Streamed model rounds: token deltas become thread.message.delta and thread.run.step.delta events.

Nothing is written to the database while tokens arrive: the round is recorded in one
transaction at its end (workers/runs.py), with the ids its events already announced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from core.ids import new_id
from core.models import Message, RunStep, wire_of


@dataclass
class Turn:
    """What the model answered in one round."""

    text: str
    calls: list[dict[str, str]]
    finish_reason: str | None
    usage: dict[str, int]

    @classmethod
    def of(cls, completion: ChatCompletion) -> Turn:
        choice = completion.choices[0]
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in choice.message.tool_calls or []
            if c.type == "function"
        ]
        u = completion.usage
        usage = {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                 "total_tokens": u.total_tokens} if u else {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return cls(choice.message.content or "", calls, choice.finish_reason, usage)


@dataclass
class TurnIds:
    """Ids fixed before the model answers, so streamed events and stored rows agree."""

    message: str = field(default_factory=lambda: new_id("msg"))
    message_step: str = field(default_factory=lambda: new_id("step"))
    tools_step: str = field(default_factory=lambda: new_id("step"))
    announced: set[str] = field(default_factory=set)  # which of the above already had *.created


def _owned(run: Any) -> dict[str, Any]:
    return {"project": run.project, "thread_id": run.thread_id, "assistant_id": run.assistant_id}


def message_wire(run: Any, ids: TurnIds, created: float, **values: Any) -> Any:
    row = _owned(run) | {
        "id": ids.message, "created_at": created, "role": "assistant", "content": [], "attachments": [],
        "metadata": None, "run_id": run.id, "status": "in_progress", "completed_at": None, "incomplete_at": None,
        "incomplete_details": None,
    }
    return wire_of(Message, row | values)


def step_wire(run: Any, step_id: str, created: float, kind: str, details: dict[str, Any], **values: Any) -> Any:
    row = _owned(run) | {
        "id": step_id, "run_id": run.id, "created_at": created, "type": kind, "status": "in_progress",
        "step_details": details, "usage": None, "last_error": None, "metadata": None, "completed_at": None,
        "cancelled_at": None, "failed_at": None, "expired_at": None,
    }
    return wire_of(RunStep, row | values)


def message_start(run: Any, ids: TurnIds, created: float) -> list[tuple[str, str]]:
    """step.created/in_progress for the message_creation step, then message.created/in_progress."""
    if ids.message in ids.announced:
        return []
    ids.announced.add(ids.message)
    details = {"type": "message_creation", "message_creation": {"message_id": ids.message}}
    step = step_wire(run, ids.message_step, created, "message_creation", details).model_dump_json()
    message = message_wire(run, ids, created).model_dump_json()
    return [("thread.run.step.created", step), ("thread.run.step.in_progress", step),
            ("thread.message.created", message), ("thread.message.in_progress", message)]


def tools_start(run: Any, ids: TurnIds, created: float) -> list[tuple[str, str]]:
    if ids.tools_step in ids.announced:
        return []
    ids.announced.add(ids.tools_step)
    step = step_wire(run, ids.tools_step, created, "tool_calls", {"type": "tool_calls", "tool_calls": []})
    data = step.model_dump_json()
    return [("thread.run.step.created", data), ("thread.run.step.in_progress", data)]


def _text_delta(message_id: str, text: str) -> str:
    return json.dumps({"id": message_id, "object": "thread.message.delta", "delta": {
        "content": [{"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]}})


def _call_delta(step_id: str, index: int, call_id: str | None, name: str | None, arguments: str) -> str:
    call: dict[str, Any] = {"index": index, "type": "function", "function": {"arguments": arguments}}
    if call_id:
        call["id"] = call_id
    if name:
        call["function"] |= {"name": name, "output": None}
    return json.dumps({"id": step_id, "object": "thread.run.step.delta",
                       "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}})


async def stream_turn(client: Any, request: dict[str, Any], run: Any, ids: TurnIds, started: float,
                      publish: Any) -> Turn:
    """One streamed model round: publish deltas as they arrive, return the assembled answer."""
    body = request | {"stream": True, "stream_options": {"include_usage": True}}
    stream = await client.post("/chat/completions", body=body, cast_to=ChatCompletion, stream=True,
                               stream_cls=AsyncStream[ChatCompletionChunk])
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    async for chunk in stream:
        if chunk.usage:
            usage = {"prompt_tokens": chunk.usage.prompt_tokens, "completion_tokens": chunk.usage.completion_tokens,
                     "total_tokens": chunk.usage.total_tokens}
        events: list[tuple[str, str]] = []
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            delta = choice.delta
            if delta.content:
                events += message_start(run, ids, started)
                events.append(("thread.message.delta", _text_delta(ids.message, delta.content)))
                text.append(delta.content)
            for tc in delta.tool_calls or []:
                events += tools_start(run, ids, started)
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                name = tc.function.name if tc.function else None
                arguments = (tc.function.arguments if tc.function else None) or ""
                slot["id"] = tc.id or slot["id"]
                slot["name"] = name or slot["name"]
                slot["arguments"] += arguments
                events.append(("thread.run.step.delta", _call_delta(ids.tools_step, tc.index, tc.id, name, arguments)))
        if events:
            await publish(events)
    return Turn("".join(text), [calls[i] for i in sorted(calls)], finish, usage)
