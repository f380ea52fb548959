"""The run state machine against real databases (SQLite and PostgreSQL): claims, leases, sweeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from core.config import Settings
from core.db import async_engine, migrate, sessionmaker
from core.events import MemoryEventLog
from core.ids import now
from core.models import MESSAGES, STEPS, Message, Run, RunStep, new_row
from core.store import open_store
from tests.conftest import fresh_pg_database
from tests.procs import TEST_NAMESPACE, ScriptedModel
from tests.utils import rows
from workers import run_loop as runs
from workers.model_client import ModelClients
from workers.rows import message_row, step_row
from workers.runner import Runner


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/t.db" if request.param == "sqlite" else fresh_pg_database()
    migrate(url)
    yield url


class Connections:
    """What a Runner opens: SQLAlchemy's engine, and the run store (on PostgreSQL, an asyncpg pool)."""

    def __init__(self, url: str) -> None:
        self.engine = async_engine(url)
        self.store = open_store(url, size=4)

    async def dispose(self) -> None:
        await self.store.close()
        await self.engine.dispose()


def ctx_for(url: str, owner: str) -> tuple[runs.Context, Any]:
    settings = Settings(database_url=url, run_lease_seconds=30)
    conns = Connections(url)
    return runs.Context(
        settings, conns.engine, conns.store, ModelClients(settings), owner, MemoryEventLog()
    ), conns


def sessions(ctx: runs.Context) -> Any:
    return sessionmaker(ctx.engine)()


async def messages_of(ctx: runs.Context, run_id: str) -> list[Message]:
    async with sessions(ctx) as s:
        return list((await s.exec(select(Message).where(Message.run_id == run_id))).all())


def test_claim_is_exclusive(database_url: str) -> None:
    async def go() -> None:
        a, ea = ctx_for(database_url, "worker-a")
        b, eb = ctx_for(database_url, "worker-b")
        run = await rows.run(a.engine)
        got = await asyncio.gather(runs.claim(a, run.id), runs.claim(b, run.id))
        assert sum(x is not None for x in got) == 1
        await ea.dispose()
        await eb.dispose()

    asyncio.run(go())


def test_result_of_a_lost_run_is_dropped(database_url: str) -> None:
    """A worker whose lease lapsed and whose run was taken over writes nothing."""

    async def go() -> None:
        a, ea = ctx_for(database_url, "worker-a")
        b, eb = ctx_for(database_url, "worker-b")
        run = await rows.run(a.engine)
        got_a = await runs.claim(a, run.id)
        assert got_a is not None
        claimed = got_a.run
        async with sessions(a) as s:  # the lease lapses and the sweeper hands the run to b
            row = await s.get(Run, run.id)
            row.status, row.owner = "queued", None
            s.add(row)
            await s.commit()
        got_b = await runs.claim(b, run.id)
        assert got_b is not None
        claimed_b = got_b.run

        def reply() -> list[tuple[Any, dict[str, Any]]]:
            return [
                (
                    MESSAGES,
                    new_row(
                        "msg",
                        project="p",
                        thread_id=run.thread_id,
                        role="assistant",
                        run_id=run.id,
                        status="completed",
                    ),
                )
            ]

        assert not await runs.finish(a, claimed, "completed", inserts=reply())
        assert await runs.finish(b, claimed_b, "completed", inserts=reply())
        assert len(await messages_of(a, run.id)) == 1
        await ea.dispose()
        await eb.dispose()

    asyncio.run(go())


def test_sweeper(database_url: str) -> None:
    async def go() -> None:
        sent: list[str] = []
        # no warm sandboxes, and a test namespace: the session's end removes any container left
        settings = Settings(
            database_url=database_url,
            requeue_after_seconds=5,
            sandbox_pool_size=0,
            redis_namespace=TEST_NAMESPACE + "sweeper",
        )
        runner = Runner(settings, sent.append)
        ctx = runner.ctx
        db = ctx.engine
        lapsed = await rows.run(
            db, status="in_progress", owner="dead", lease_until=now() - 1, expires_at=now() + 60
        )
        lost = await rows.run(db, expires_at=now() + 60)
        lost_old = await rows.run(db, expires_at=now() + 60)
        over = await rows.run(
            db, status="in_progress", owner="slow", lease_until=now() + 60, expires_at=now() - 1
        )
        async with sessions(ctx) as s:
            row = await s.get(Run, lost_old.id)
            row.enqueued_at = now() - 10
            s.add(row)
            await s.commit()
        await runner.sweep()
        assert sorted(sent) == sorted([lapsed.id, lost_old.id])
        async with sessions(ctx) as s:
            assert (await s.get(Run, lapsed.id)).status == "queued"
            assert (await s.get(Run, lost.id)).status == "queued"
            failed = await s.get(Run, over.id)
            assert failed.status == "expired" and failed.last_error["code"] == "server_error"
        await runner.close()

    asyncio.run(go())


def test_cancelled_while_queued(database_url: str) -> None:
    async def go() -> None:
        ctx, engine = ctx_for(database_url, "w")
        run = await rows.run(ctx.engine, status="cancelling")
        assert await runs.claim(ctx, run.id) is None
        async with sessions(ctx) as s:
            row = await s.get(Run, run.id)
            assert row.status == "cancelled" and row.cancelled_at
        await engine.dispose()

    asyncio.run(go())


def test_a_rounds_end_writes_its_rows(database_url: str) -> None:
    """The round's end (one statement on PostgreSQL) stores the run's values and the rows as
    given, JSON and NULLs included, with the column defaults an ORM insert would fill."""

    async def go() -> None:
        ctx, conns = ctx_for(database_url, "w")
        run = await rows.run(ctx.engine, stream=True)
        claimed = await runs.claim(ctx, run.id)
        assert claimed is not None and [m.role for m in claimed.thread] == ["user"]
        content = [{"type": "text", "text": {"value": 'héllo "quoted"', "annotations": []}}]
        message = message_row(
            claimed.run, "msg_end", 1.5, content=content, status="completed", completed_at=2.5
        )
        step = step_row(
            claimed.run,
            "step_end",
            1.5,
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": "msg_end"}},
            status="completed",
            completed_at=2.5,
            usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        )
        step.pop("metadata")  # left to the column's default
        usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        assert await runs.finish(
            ctx,
            claimed.run,
            "completed",
            inserts=[(MESSAGES, message), (STEPS, step)],
            announce=lambda _: [],
            usage=usage,
            completed_at=2.5,
        )
        async with sessions(ctx) as s:
            r = await s.get(Run, run.id)
            assert (r.status, r.usage, r.completed_at, r.owner, r.lease_until) == (
                "completed",
                usage,
                2.5,
                None,
                None,
            )
            m = await s.get(Message, "msg_end")
            assert (m.content, m.status, m.completed_at, m.incomplete_details, m.run_id) == (
                content,
                "completed",
                2.5,
                None,
                run.id,
            )
            st = await s.get(RunStep, "step_end")
            assert st.step_details["message_creation"]["message_id"] == "msg_end" and st.usage == usage
            assert st.meta is None and st.seq > m.seq
        # the run is over: a second end (a stale attempt) changes nothing
        assert not await runs.finish(ctx, claimed.run, "failed", failed_at=3.0)
        await conns.dispose()

    asyncio.run(go())


def test_housekeeping_stops_only_runs_taken_from_their_task(database_url: str) -> None:
    """A user's cancel, an expiry, a takeover or an end by another worker stops the run's task; a
    run its own task has just ended is left alone, or its stream would never hear the end (seen:
    a run recorded incomplete whose stream hung)."""

    async def go() -> None:
        settings = Settings(
            database_url=database_url, sandbox_pool_size=0, redis_namespace=TEST_NAMESPACE + "housekeeping"
        )
        runner = Runner(settings, lambda _: None)
        me, db = runner.ctx.owner, runner.ctx.engine
        cases = {
            "cancelling": await rows.run(db, status="cancelling", owner=me),
            "expired": await rows.run(db, status="expired"),
            "taken over": await rows.run(db, status="in_progress", owner="another worker"),
            "ended by another worker": await rows.run(db, status="completed"),
            "cancelled by another worker": await rows.run(db, status="cancelled"),
            "ours": await rows.run(db, status="in_progress", owner=me),
            "just ended by its task": await rows.run(db, status="incomplete"),
            "waiting for outputs, by its task": await rows.run(db, status="requires_action"),
        }
        runner.ctx.ended.update(cases[name].id for name in cases if name.endswith("by its task"))
        tasks = {name: asyncio.create_task(asyncio.sleep(60)) for name in cases}
        runner.tasks.update({run.id: tasks[name] for name, run in cases.items()})
        await runner._check_cancelled()
        await asyncio.sleep(0)
        stopped = {name for name, task in tasks.items() if task.cancelled() or task.cancelling()}
        assert stopped == {
            "cancelling",
            "expired",
            "taken over",
            "ended by another worker",
            "cancelled by another worker",
        }
        for task in tasks.values():
            task.cancel()
        runner.tasks.clear()
        await runner.close()

    asyncio.run(go())


def test_housekeeping_between_a_runs_end_and_its_announcement_spares_the_run(
    database_url: str, model_server: ScriptedModel
) -> None:
    """Housekeeping's look at the runs can see a run's end committed before the run's own task
    has resumed from that commit (both answers wait on the loop, under load): the task must not be
    cancelled there, or the end is stored but never announced and the run's stream hangs (seen:
    streamed runs in distributed mode hanging until the test timeout, now and then)."""

    async def go() -> None:
        settings = Settings(
            database_url=database_url,
            sandbox_pool_size=0,
            redis_namespace=TEST_NAMESPACE + "announce",
            openai_base_url=f"{model_server.url}/v1",
            openai_api_key="sk-scripted",
        )
        runner = Runner(settings, lambda _: None)
        ctx = runner.ctx
        ctx.events = log = MemoryEventLog()
        committed = ctx.store.finish

        async def finish(*args: Any, **kw: Any) -> bool:
            done = await committed(*args, **kw)
            # the commit is visible: housekeeping's query answers before this task resumes
            looked = asyncio.Event()

            async def housekeeping() -> None:
                await runner._check_cancelled()
                looked.set()

            checking = asyncio.create_task(housekeeping())
            await looked.wait()
            await checking
            return done

        ctx.store.finish = finish  # type: ignore[method-assign]
        run = await rows.run(ctx.engine, stream=True)
        await runner.start(run.id)
        task = runner.tasks[run.id]
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        async with sessions(ctx) as s:
            assert (await s.get(Run, run.id)).status == "completed"
        last = await log.last_event(run.id)
        assert last is not None and last[0] == "thread.run.completed", last
        await runner.close()

    asyncio.run(go())


def test_claim_reads_only_what_a_prompt_could_hold(database_url: str) -> None:
    """A long thread is never loaded whole: messages older than four characters a token of the
    context window (plus a margin) could not fit the prompt, and stay in the database."""

    async def go() -> None:
        ctx, conns = ctx_for(database_url, "w")
        ctx.settings.context_window = 2000  # at most 4 * 2000 + 4096 characters of newer content
        run = await rows.run(ctx.engine)
        async with sessions(ctx) as s:
            for i in range(40):
                await rows.message(s, run.thread_id, f"m{i} " + "x" * 996)
            await s.commit()
        claimed = await runs.claim(ctx, run.id)
        assert claimed is not None
        texts = [m.content[0]["text"]["value"][:3] for m in claimed.thread]
        assert 10 <= len(texts) <= 13 and texts[-1] == "m39"  # the newest, about 12 KB of them
        await conns.dispose()

    asyncio.run(go())
