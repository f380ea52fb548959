"""The model's answer to a response's request, streamed into its Output (and its events) as the
chunks arrive, or read whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from workers.responses.output import Output
from workers.streaming import UNKNOWN, Coalescer, CutShort, Publish, Turn, chunks, open_stream, usage_of


@dataclass
class Answer:
    finish: str | None
    usage: dict[str, Any]  # prompt/completion/total tokens, all None when the endpoint sent none


def _reasoning(source: Any) -> str | None:
    """Reasoning text an endpoint sends beside the answer (vLLM, llama.cpp: `reasoning_content`)."""
    extra = getattr(source, "model_extra", None) or (source if isinstance(source, dict) else {})
    value = extra.get("reasoning_content") or extra.get("reasoning")
    return value if isinstance(value, str) and value else None


async def whole(client: AsyncOpenAI, request: dict[str, Any], output: Output) -> Answer:
    """A non-streamed answer, fed to `output` at once."""
    body = await client.post("/chat/completions", body=request, cast_to=object)
    turn = Turn.of(body)
    message = body["choices"][0].get("message") or {} if isinstance(body, dict) else {}
    if reasoning := _reasoning(message):
        output.reasoning_delta(reasoning)
    if turn.text:
        output.text_delta(turn.text)
    for index, call in enumerate(turn.calls):
        output.call_delta(index, call["id"], call["name"], call["arguments"])
    return Answer(turn.finish_reason, turn.usage)


async def streamed(
    client: AsyncOpenAI, request: dict[str, Any], output: Output, publish: Publish, usage: bool = True
) -> Answer:
    """A streamed answer: each chunk's events published as it arrives (batched while a write is
    in flight). CutShort if the stream ends before the answer's finish_reason."""
    stream = await open_stream(client, request, usage)
    answer, out = Answer(None, dict(UNKNOWN)), Coalescer(publish)
    try:
        async for chunk in chunks(stream):
            events = _absorb(chunk, answer, output)
            if events:
                out.add(events)
    except CutShort:
        if answer.finish is None:
            raise
    finally:
        await out.drain()
    if answer.finish is None:
        raise CutShort("the stream closed without a finish_reason")
    return answer


def _absorb(chunk: ChatCompletionChunk, answer: Answer, output: Output) -> list[tuple[str, str]]:
    if chunk.usage:
        answer.usage = usage_of(chunk.usage.model_dump())
    events: list[tuple[str, str]] = []
    for choice in chunk.choices:
        answer.finish = choice.finish_reason or answer.finish
        delta = choice.delta
        if reasoning := _reasoning(delta):
            events += output.reasoning_delta(reasoning)
        if delta.content:
            events += output.text_delta(delta.content)
        for tc in delta.tool_calls or []:
            function = tc.function
            events += output.call_delta(
                tc.index,
                tc.id,
                function.name if function else None,
                (function.arguments if function else None) or "",
            )
    return events
