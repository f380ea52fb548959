"""A response's execution through the run store, on SQLite and PostgreSQL, against the scripted
model: claim, context (a previous response's chain, a conversation), the guarded end, cancel."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import select

from core.config import Settings
from core.db import async_engine, migrate
from core.events import MemoryEventLog
from core.ids import new_id, now, seq
from core.models import new_row
from core.responses import CONVERSATIONS, ITEMS, RESPONSES
from core.store import open_store
from tests.conftest import fresh_pg_database
from tests.procs import ScriptedModel
from workers.context import Context
from workers.model_client import ModelClients
from workers.responses import loop


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/t.db" if request.param == "sqlite" else fresh_pg_database()
    migrate(url)
    yield url


def context(url: str, model_server: ScriptedModel, owner: str = "w1") -> Context:
    settings = Settings(
        database_url=url, run_lease_seconds=30, openai_base_url=f"{model_server.url}/v1", openai_api_key="k"
    )
    engine = async_engine(url)
    return Context(settings, engine, open_store(url, size=4), ModelClients(settings), owner, MemoryEventLog())


async def close(ctx: Context) -> None:
    await ctx.clients.close()
    await ctx.store.close()
    await ctx.engine.dispose()


def response_row(**values: Any) -> dict[str, Any]:
    t = now()
    return (
        new_row(
            "resp",
            project="p",
            status="queued",
            model="echo",
            instructions=None,
            tools=[],
            tool_choice=None,
            parallel_tool_calls=True,
            max_output_tokens=None,
            max_tool_calls=None,
            temperature=None,
            top_p=None,
            text_format=None,
            truncation="disabled",
            reasoning=None,
            include=None,
            user=None,
            safety_identifier=None,
            prompt_cache_key=None,
            store=True,
            background=False,
            stream=False,
            previous_response_id=None,
            conversation_id=None,
            output=None,
            usage=None,
            error=None,
            incomplete_details=None,
            completed_at=None,
            expires_at=t + 600,
            owner=None,
            lease_until=None,
            enqueued_at=t,
            started_at=None,
            attempts=0,
        )
        | values
    )


def user_item(response_id: str | None, text: str, **values: Any) -> dict[str, Any]:
    item_id = new_id("msg")
    data = {
        "id": item_id,
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": text}],
    }
    return {
        "id": item_id,
        "project": "p",
        "seq": seq(),
        "created_at": now(),
        "type": "message",
        "response_id": response_id,
        "output": False,
        "conversation_id": None,
        "data": data,
    } | values


async def submit(ctx: Context, text: str, **values: Any) -> str:
    row = response_row(**values)
    await ctx.store.insert([(RESPONSES, [row]), (ITEMS, [user_item(row["id"], text)])])
    return str(row["id"])


async def run(ctx: Context, response_id: str) -> dict[str, Any]:
    claimed = await loop.claim(ctx, response_id)
    assert claimed is not None
    await loop.execute(ctx, claimed)
    async with ctx.engine.connect() as conn:
        found = (await conn.execute(select(RESPONSES).where(RESPONSES.c.id == response_id))).first()
    assert found is not None
    return dict(found._mapping)


def texts(response: dict[str, Any]) -> list[str]:
    return [
        part["text"] for item in response["output"] if item["type"] == "message" for part in item["content"]
    ]


def test_plain_response_completes_once(database_url: str, model_server: ScriptedModel) -> None:
    async def go() -> None:
        ctx, other = context(database_url, model_server), context(database_url, model_server, "w2")
        response_id = await submit(ctx, "hello there")
        claims = await asyncio.gather(loop.claim(ctx, response_id), loop.claim(other, response_id))
        assert sum(c is not None for c in claims) == 1
        claimed = next(c for c in claims if c is not None)
        await loop.execute(ctx if claims[0] else other, claimed)
        async with ctx.engine.connect() as conn:
            row = (await conn.execute(select(RESPONSES).where(RESPONSES.c.id == response_id))).one()
            outputs = (
                await conn.execute(
                    select(ITEMS).where(ITEMS.c.response_id == response_id, ITEMS.c.output.is_(True))
                )
            ).all()
        assert row.status == "completed" and row.owner is None and row.usage["total_tokens"] > 0
        assert texts(dict(row._mapping)) == ["You said: hello there"]
        assert [o.data for o in outputs] == row.output
        ((_, name, data),) = await ctx.events.read(response_id, "0", 10)  # a plain response: its end only
        assert name == "response.completed" and json.loads(data)["response"]["status"] == "completed"
        await close(ctx)
        await close(other)

    asyncio.run(go())


def test_previous_response_chain_is_the_context(database_url: str, model_server: ScriptedModel) -> None:
    tag = uuid.uuid4().hex[:8]

    async def go() -> None:
        ctx = context(database_url, model_server)
        first = await submit(ctx, f"{tag} first question")
        await run(ctx, first)
        second = await submit(ctx, f"{tag} second question", previous_response_id=first)
        await run(ctx, second)
        (sent,) = [
            r["body"]
            for r in model_server.requests("echo")
            if f"{tag} second question" in json.dumps(r["body"])
        ]
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][1]["content"] == f"You said: {tag} first question"
        await close(ctx)

    asyncio.run(go())


def test_conversation_gains_the_items_when_it_ends(database_url: str, model_server: ScriptedModel) -> None:
    tag = uuid.uuid4().hex[:8]

    async def go() -> None:
        ctx = context(database_url, model_server)
        conversation = new_row("conv", project="p")
        await ctx.store.insert(
            [
                (CONVERSATIONS, [conversation]),
                (ITEMS, [user_item(None, f"{tag} earlier words", conversation_id=conversation["id"])]),
            ]
        )
        response_id = await submit(ctx, f"{tag} now this", conversation_id=conversation["id"])
        await run(ctx, response_id)
        async with ctx.engine.connect() as conn:
            held = (
                (
                    await conn.execute(
                        select(ITEMS.c.data)
                        .where(ITEMS.c.conversation_id == conversation["id"])
                        .order_by(ITEMS.c.seq)
                    )
                )
                .scalars()
                .all()
            )
        assert [i["type"] for i in held] == ["message", "message", "message"]
        assert [i["role"] for i in held] == ["user", "user", "assistant"]
        (sent,) = [
            r["body"] for r in model_server.requests("echo") if f"{tag} now this" in json.dumps(r["body"])
        ]
        assert [m["content"] for m in sent["messages"]] == [f"{tag} earlier words", f"{tag} now this"]
        await close(ctx)

    asyncio.run(go())


def test_a_cancelled_response_keeps_no_output(database_url: str, model_server: ScriptedModel) -> None:
    async def go() -> None:
        ctx = context(database_url, model_server)
        response_id = await submit(ctx, "cancel me", background=True)
        claimed = await loop.claim(ctx, response_id)
        assert claimed is not None
        assert (await ctx.store.cancel_response(response_id, now())) is not None
        await loop.execute(ctx, claimed)  # its end no longer applies
        async with ctx.engine.connect() as conn:
            row = (await conn.execute(select(RESPONSES).where(RESPONSES.c.id == response_id))).one()
            outputs = (
                await conn.execute(
                    select(ITEMS).where(ITEMS.c.response_id == response_id, ITEMS.c.output.is_(True))
                )
            ).all()
        assert row.status == "cancelled" and row.output is None and outputs == []
        await close(ctx)

    asyncio.run(go())


def test_store_false_leaves_nothing(database_url: str, model_server: ScriptedModel) -> None:
    async def go() -> None:
        ctx = context(database_url, model_server)
        response_id = await submit(ctx, "forget me", store=False)
        claimed = await loop.claim(ctx, response_id)
        assert claimed is not None
        await loop.execute(ctx, claimed)
        async with ctx.engine.connect() as conn:
            left = (await conn.execute(select(RESPONSES.c.id).where(RESPONSES.c.id == response_id))).all()
            items = (await conn.execute(select(ITEMS.c.id).where(ITEMS.c.response_id == response_id))).all()
        assert left == [] and items == []
        events = await ctx.events.read(response_id, "0", 10)
        assert events[-1][1] == "response.completed"
        await close(ctx)

    asyncio.run(go())


def sdk_final(events: list[tuple[str, str, str]]) -> Any:
    """What the SDK's stream helper makes of these events (it raises on a broken stream)."""
    from openai._models import construct_type_unchecked
    from openai.lib.streaming.responses._responses import ResponseStreamState
    from openai.types.responses import ResponseStreamEvent

    state: Any = ResponseStreamState(input_tools=[], text_format=openai.omit)
    for _, _, data in events:
        state.handle_event(construct_type_unchecked(type_=ResponseStreamEvent, value=json.loads(data)))
    return state._completed_response


def test_a_stream_taken_over_mid_answer_stays_whole(database_url: str, model_server: ScriptedModel) -> None:
    """A worker that dies mid-stream leaves items open; the next attempt closes them and numbers its
    own after them, so a streaming client's accumulator still ends with one whole response."""
    from workers.responses.output import Output

    async def go() -> None:
        ctx, other = context(database_url, model_server), context(database_url, model_server, "w2")
        response_id = await submit(ctx, "taken over", background=True, stream=True)
        claimed = await loop.claim(ctx, response_id)
        assert claimed is not None
        output: Output = await loop.start(ctx, claimed.response)
        await ctx.events.publish(response_id, output.text_delta("You said"))  # then the worker dies
        async with ctx.engine.begin() as conn:  # its lease lapses; the sweeper queues it again
            await conn.execute(
                RESPONSES.update().where(RESPONSES.c.id == response_id).values(status="queued", owner=None)
            )
        other.events = ctx.events  # one log, as Redis would be
        await run(other, response_id)
        events = await ctx.events.read(response_id, "0", 10)
        numbers = [json.loads(d)["sequence_number"] for _, _, d in events]
        assert numbers == list(range(len(numbers)))
        first = json.loads(events[0][2])  # the first attempt's response.in_progress: output empty
        created = {"type": "response.created", "sequence_number": -1, "response": first["response"]}
        final = sdk_final([("", "response.created", json.dumps(created)), *events])
        assert final is not None and final.output_text == "You saidYou said: taken over"
        assert [item.status for item in final.output] == ["incomplete", "completed"]
        await close(ctx)
        await close(other)

    asyncio.run(go())
