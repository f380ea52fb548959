"""Streamed model rounds: token deltas become thread.message.delta and thread.run.step.delta events.

Nothing is written to the database while tokens arrive: the round is recorded in one
transaction at its end (workers/runs.py), with the ids its events already announced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.beta.threads import Message as MessageWire
from openai.types.beta.threads.runs import RunStep as StepWire
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from core.events import EventLog
from core.ids import new_id
from core.models import Message, RunStep, wire_of
from core.store import RunRow
from workers.rows import message_row, step_row


class CutShort(Exception):
    """The endpoint's stream ended (or broke off) before the answer's finish_reason: what came is
    not the whole answer, so it is never recorded as one."""


@dataclass
class Turn:
    """What the model answered in one round."""

    text: str
    calls: list[dict[str, str]]
    finish_reason: str | None
    usage: dict[str, Any]  # token counts, or all None when the endpoint reported none

    @classmethod
    def of(cls, completion: Any) -> Turn:
        """A whole answer, from its JSON as sent (building the SDK's typed ChatCompletion cost
        more of the worker's CPU than the rest of a round's bookkeeping)."""
        if isinstance(completion, (str, bytes)):  # JSON sent without a JSON content type
            try:
                completion = json.loads(completion)
            except ValueError:
                raise ValueError("the model's answer is not JSON") from None
        choices = completion.get("choices") if isinstance(completion, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise ValueError("the model's answer is not a chat completion with a choice")
        choice = choices[0]
        message = choice.get("message") or {}
        calls = [
            {
                "id": c.get("id") or new_id("call"),  # a server that sends none: the client needs one
                "name": c["function"]["name"],
                "arguments": _arguments(c["function"].get("arguments")),
            }
            for c in message.get("tool_calls") or []
            if c.get("type", "function") == "function"  # some servers leave the type out
        ]
        return cls(
            message.get("content") or "",
            calls,
            choice.get("finish_reason"),
            usage_of(completion.get("usage")),
        )


UNKNOWN = {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}


def usage_of(u: Any) -> dict[str, Any]:
    """The endpoint's token counts; all None when it sent none (some servers never do when
    streaming): a zero would be a false figure, and null is what the run then reports."""
    if not isinstance(u, dict) or u.get("prompt_tokens") is None or u.get("completion_tokens") is None:
        return dict(UNKNOWN)
    usage = {k: int(u[k]) for k in ("prompt_tokens", "completion_tokens")}
    usage["total_tokens"] = int(u.get("total_tokens") or usage["prompt_tokens"] + usage["completion_tokens"])
    return usage


def _arguments(value: Any) -> str:
    """A call's arguments as the JSON text the API carries (some servers send the object)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class TurnIds:
    """Ids fixed before the model answers, so streamed events and stored rows agree."""

    message: str = field(default_factory=lambda: new_id("msg"))
    message_step: str = field(default_factory=lambda: new_id("step"))
    tools_step: str = field(default_factory=lambda: new_id("step"))
    announced: set[str] = field(default_factory=set)  # which of the above already had *.created
    streamed: list[str] = field(default_factory=list)  # the text sent as deltas so far
    images: list[dict[str, Any]] = field(default_factory=list)  # image_file parts the message opens with


def message_wire(run: RunRow, ids: TurnIds, created: float, **values: Any) -> MessageWire:
    wire: MessageWire = wire_of(Message, message_row(run, ids.message, created, **values))
    return wire


def step_wire(
    run: RunRow, step_id: str, created: float, kind: str, details: dict[str, Any], **values: Any
) -> StepWire:
    wire: StepWire = wire_of(RunStep, step_row(run, step_id, created, kind, details, **values))
    return wire


def message_start(run: RunRow, ids: TurnIds, created: float) -> list[tuple[str, str]]:
    """step.created/in_progress for the message_creation step, then message.created/in_progress
    (and its image parts: the text follows them, at index len(images))."""
    if ids.message in ids.announced:
        return []
    ids.announced.add(ids.message)
    details = {"type": "message_creation", "message_creation": {"message_id": ids.message}}
    step = step_wire(run, ids.message_step, created, "message_creation", details).model_dump_json()
    message = message_wire(run, ids, created).model_dump_json()
    events = [
        ("thread.run.step.created", step),
        ("thread.run.step.in_progress", step),
        ("thread.message.created", message),
        ("thread.message.in_progress", message),
    ]
    if ids.images:
        parts = [{"index": i} | part for i, part in enumerate(ids.images)]
        events.append(
            (
                "thread.message.delta",
                json.dumps(
                    {"id": ids.message, "object": "thread.message.delta", "delta": {"content": parts}}
                ),
            )
        )
    return events


def tools_start(run: RunRow, ids: TurnIds, created: float) -> list[tuple[str, str]]:
    if ids.tools_step in ids.announced:
        return []
    ids.announced.add(ids.tools_step)
    step = step_wire(run, ids.tools_step, created, "tool_calls", {"type": "tool_calls", "tool_calls": []})
    data = step.model_dump_json()
    return [("thread.run.step.created", data), ("thread.run.step.in_progress", data)]


def abandoned(
    run: RunRow,
    ids: TurnIds,
    started: float,
    cancelled: bool,
    error: dict[str, str] | None,
    only: tuple[str, ...] | None = None,
) -> list[tuple[str, str]]:
    """Close what a round announced but will never finish (all of it, or the ids in `only`): its
    message becomes incomplete and its steps failed (or cancelled), so a streaming client is not
    left with open objects."""
    events: list[tuple[str, str]] = []
    t = time.time()
    step_status = "cancelled" if cancelled else "failed"
    if error is not None and error["code"] not in ("server_error", "rate_limit_exceeded"):
        error = error | {"code": "server_error"}  # the only codes a run step's last_error takes
    step_values = {"status": step_status, f"{step_status}_at": t, "last_error": None if cancelled else error}
    wanted = ids.announced if only is None else ids.announced & set(only)
    if ids.message in wanted:
        reason = "run_cancelled" if cancelled else "run_failed"
        content = [{"type": "text", "text": {"value": "".join(ids.streamed), "annotations": []}}]
        message = message_wire(
            run,
            ids,
            started,
            status="incomplete",
            incomplete_at=t,
            content=content,
            incomplete_details={"reason": reason},
        )
        details = {"type": "message_creation", "message_creation": {"message_id": ids.message}}
        step = step_wire(run, ids.message_step, started, "message_creation", details, **step_values)
        events += [
            ("thread.message.incomplete", message.model_dump_json()),
            (f"thread.run.step.{step_status}", step.model_dump_json()),
        ]
    if ids.tools_step in wanted:
        step = step_wire(
            run,
            ids.tools_step,
            started,
            "tool_calls",
            {"type": "tool_calls", "tool_calls": []},
            **step_values,
        )
        events.append((f"thread.run.step.{step_status}", step.model_dump_json()))
    return events


CLOSING = {
    "thread.message.completed",
    "thread.message.incomplete",
    "thread.run.step.completed",
    "thread.run.step.failed",
    "thread.run.step.cancelled",
    "thread.run.step.expired",
}


async def orphans(log: EventLog, run_id: str) -> list[tuple[str, str]]:
    """Events closing what an earlier attempt of this run announced and never finished (its worker
    died mid-round): the message becomes incomplete with the text already streamed, its steps
    fail. A client then sees that attempt end before the next one starts."""
    opened: dict[str, dict[str, Any]] = {}
    streamed: dict[str, list[str]] = {}
    after = "0"
    while batch := await log.read(run_id, after, 1):
        for after, name, data in batch:
            obj = json.loads(data)
            if name in ("thread.message.created", "thread.run.step.created"):
                opened[obj["id"]] = obj
            elif name == "thread.message.delta":
                streamed.setdefault(obj["id"], []).extend(
                    p["text"]["value"] for p in obj["delta"]["content"] if p.get("type") == "text"
                )
            elif name in CLOSING:
                opened.pop(obj["id"], None)
    t = int(time.time())
    events = []
    for obj in opened.values():
        if obj["object"] == "thread.message":
            text = "".join(streamed.get(obj["id"], []))
            obj |= {
                "status": "incomplete",
                "incomplete_at": t,
                "incomplete_details": {"reason": "run_failed"},
                "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
            }
            events.append(("thread.message.incomplete", json.dumps(obj)))
        else:
            error = {
                "code": "server_error",
                "message": "The worker running this step stopped; another took over.",
            }
            obj |= {"status": "failed", "failed_at": t, "last_error": error}
            events.append(("thread.run.step.failed", json.dumps(obj)))
    return events


def _text_delta(ids: TurnIds, text: str) -> str:
    return json.dumps(
        {
            "id": ids.message,
            "object": "thread.message.delta",
            "delta": {
                "content": [
                    {"index": len(ids.images), "type": "text", "text": {"value": text, "annotations": []}}
                ]
            },
        }
    )


def annotations_delta(message_id: str, part: int, annotations: list[dict[str, Any]]) -> tuple[str, str]:
    """The text's annotations, once the answer is whole (a citation is known only then), as one
    more delta before the message completes, as OpenAI sends them: each with its `index` in the
    text's annotations, and an empty `value`, which adds nothing to the text a client has."""
    indexed = [{"index": i} | a for i, a in enumerate(annotations)]
    text = {"value": "", "annotations": indexed}
    delta = {"content": [{"index": part, "type": "text", "text": text}]}
    return "thread.message.delta", json.dumps(
        {"id": message_id, "object": "thread.message.delta", "delta": delta}
    )


def builtin_delta(step_id: str, index: int, call: dict[str, Any]) -> tuple[str, str]:
    """A step delta for a built-in tool call (`call` holds its id, type and what changed)."""
    delta = {"step_details": {"type": "tool_calls", "tool_calls": [{"index": index} | call]}}
    return "thread.run.step.delta", json.dumps(
        {"id": step_id, "object": "thread.run.step.delta", "delta": delta}
    )


def _call_delta(step_id: str, index: int, call_id: str | None, name: str | None, arguments: str) -> str:
    call: dict[str, Any] = {"index": index, "type": "function", "function": {"arguments": arguments}}
    if call_id:
        call["id"] = call_id
    if name:
        call["function"] |= {"name": name, "output": None}
    return json.dumps(
        {
            "id": step_id,
            "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
        }
    )


Publish = Callable[[list[tuple[str, str]]], Awaitable[None]]  # appends events to the run's log


class Coalescer:
    """Publishes events in order without waiting on each chunk: while one write to the log is
    in flight, the next chunks' events gather and go out together in the following write."""

    def __init__(self, publish: Publish) -> None:
        self.publish = publish
        self.pending: list[tuple[str, str]] = []
        self.flushing: asyncio.Task[None] | None = None

    def add(self, events: list[tuple[str, str]]) -> None:
        self.pending += events
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            await self.publish(batch)

    async def drain(self) -> None:
        if self.flushing is not None:
            await self.flushing


@dataclass
class _Answer:
    """A streamed answer as it accumulates."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    wire: dict[int, int] = field(
        default_factory=dict
    )  # a function call's index in the model's answer -> in the step
    finish: str | None = None
    usage: dict[str, Any] = field(default_factory=lambda: dict(UNKNOWN))

    def turn(self) -> Turn:
        calls = [self.calls[i] | {"id": self.calls[i]["id"] or new_id("call")} for i in sorted(self.calls)]
        return Turn("".join(self.text), calls, self.finish, self.usage)


async def stream_turn(
    client: AsyncOpenAI,
    request: dict[str, Any],
    run: RunRow,
    ids: TurnIds,
    started: float,
    publish: Publish,
    builtin: frozenset[str] = frozenset(),
    usage: bool = True,
) -> Turn:
    """One streamed model round: publish deltas as they arrive, return the assembled answer.

    Calls of `builtin` tools stream no argument deltas: their step shows the tool's own input
    once the worker runs it (workers/tools.py). `usage`: ask the endpoint for a usage chunk."""
    stream = await open_stream(client, request, usage)
    answer, out = _Answer(text=ids.streamed), Coalescer(publish)
    try:
        async for chunk in chunks(stream):
            events = _absorb(chunk, answer, run, ids, started, builtin)
            if events:
                out.add(events)
    except CutShort:
        if answer.finish is None:
            raise
        # the connection broke after the answer's end (before its usage or [DONE]): it is whole
    finally:
        await out.drain()
    if answer.finish is None:  # the server closed the stream early: a part is not the answer
        raise CutShort("the stream closed without a finish_reason")
    return answer.turn()


async def open_stream(
    client: AsyncOpenAI, request: dict[str, Any], usage: bool
) -> AsyncStream[ChatCompletionChunk]:
    """The streamed chat completion of `request`; `usage`: ask the endpoint for a usage chunk."""
    body = request | {"stream": True}
    if usage:
        body["stream_options"] = {"include_usage": True}
    return await client.post(
        "/chat/completions",
        body=body,
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=AsyncStream[ChatCompletionChunk],
    )


async def chunks(stream: Any) -> AsyncIterator[ChatCompletionChunk]:
    """The stream's chunks; a connection that breaks mid-stream is an answer cut short."""
    chunks = stream.__aiter__()
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except openai.APIError:  # an error event inside the stream: the endpoint's own words
            raise
        except Exception as exc:
            raise CutShort(f"the stream broke off: {type(exc).__name__}") from exc
        yield chunk


def _absorb(
    chunk: ChatCompletionChunk,
    answer: _Answer,
    run: RunRow,
    ids: TurnIds,
    started: float,
    builtin: frozenset[str],
) -> list[tuple[str, str]]:
    """Add one chunk to the answer; the events it makes."""
    if chunk.usage:
        answer.usage = usage_of(chunk.usage.model_dump())
    events: list[tuple[str, str]] = []
    for choice in chunk.choices:
        answer.finish = choice.finish_reason or answer.finish
        delta = choice.delta
        if delta.content:
            events += message_start(run, ids, started)
            events.append(("thread.message.delta", _text_delta(ids, delta.content)))
            answer.text.append(delta.content)
        for tc in delta.tool_calls or []:
            events += tools_start(run, ids, started)
            slot = answer.calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            # Some servers repeat the id and name in every chunk of a call; OpenAI sends them in
            # the call's first delta only, and the SDK concatenates whatever deltas carry.
            new_id = tc.id if tc.id and not slot["id"] else None
            name = tc.function.name if tc.function and tc.function.name and not slot["name"] else None
            arguments = (tc.function.arguments if tc.function else None) or ""
            slot["id"] = slot["id"] or tc.id or ""
            slot["name"] = slot["name"] or name or ""
            slot["arguments"] += arguments
            if slot["name"] not in builtin and (new_id or name or arguments):
                # The step lists function calls first, built-in calls after them (announced
                # once they run): the SDK's handler wants indexes that only ever go up.
                index = answer.wire.setdefault(tc.index, len(answer.wire))
                events.append(
                    ("thread.run.step.delta", _call_delta(ids.tools_step, index, new_id, name, arguments))
                )
    return events
