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
from core.models import Assistant, Message, Run, Thread, new_row
from tests.conftest import fresh_pg_database
from tests.procs import TEST_NAMESPACE
from workers import runs
from workers.models import ModelClients
from workers.runner import Runner


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/t.db" if request.param == "sqlite" else fresh_pg_database()
    migrate(url)
    yield url


def ctx_for(url: str, owner: str) -> tuple[runs.Context, Any]:
    settings = Settings(database_url=url, run_lease_seconds=30)
    engine = async_engine(url)
    return runs.Context(settings, engine, ModelClients(settings), owner, MemoryEventLog()), engine


def sessions(ctx: runs.Context) -> Any:
    return sessionmaker(ctx.engine)()


async def new_run(ctx: runs.Context, **kw: Any) -> Run:
    async with sessions(ctx) as s:
        a = Assistant(project="p", model="echo")
        t = Thread(project="p")
        r = Run(project="p", thread_id=t.id, assistant_id=a.id, model="echo", enqueued_at=now(), **kw)
        s.add_all([a, t, r, Message(project="p", thread_id=t.id, role="user",
                                    content=[{"type": "text", "text": {"value": "hi", "annotations": []}}])])
        await s.commit()
        return r


async def messages_of(ctx: runs.Context, run_id: str) -> list[Message]:
    async with sessions(ctx) as s:
        return list((await s.exec(select(Message).where(Message.run_id == run_id))).all())


def test_claim_is_exclusive(database_url: str) -> None:
    async def go() -> None:
        a, ea = ctx_for(database_url, "worker-a")
        b, eb = ctx_for(database_url, "worker-b")
        run = await new_run(a)
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
        run = await new_run(a)
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
            return [(runs.MESSAGES, new_row("msg", project="p", thread_id=run.thread_id, role="assistant",
                                            run_id=run.id, status="completed"))]

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
        settings = Settings(database_url=database_url, requeue_after_seconds=5, sandbox_pool_size=0,
                            redis_namespace=TEST_NAMESPACE + "sweeper")
        runner = Runner(settings, sent.append)
        ctx = runner.ctx
        lapsed = await new_run(ctx, status="in_progress", owner="dead", lease_until=now() - 1, expires_at=now() + 60)
        lost = await new_run(ctx, expires_at=now() + 60)
        lost_old = await new_run(ctx, expires_at=now() + 60)
        over = await new_run(ctx, status="in_progress", owner="slow", lease_until=now() + 60, expires_at=now() - 1)
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
        run = await new_run(ctx, status="cancelling")
        assert await runs.claim(ctx, run.id) is None
        async with sessions(ctx) as s:
            row = await s.get(Run, run.id)
            assert row.status == "cancelled" and row.cancelled_at
        await engine.dispose()

    asyncio.run(go())
