"""The actors behind the queues: a run id enqueued as the API enqueues it is run by a worker."""

from __future__ import annotations

import asyncio
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from core.broker import RUNS_QUEUE, backlog, enqueue_run
from core.config import Settings
from core.db import async_engine, sync_engine
from core.models import MESSAGES, RUNS, Run
from tests.utils import rows


def stored_run(url: str) -> Run:
    async def go() -> Run:
        engine = async_engine(url)
        try:
            return await rows.run(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_an_enqueued_run_is_claimed_and_answered(
    stub_broker: StubBroker, stub_worker: dramatiq.Worker, worker_settings: Settings
) -> None:
    run = stored_run(worker_settings.database_url)
    enqueue_run(run.id)
    stub_broker.join(RUNS_QUEUE, fail_fast=True)  # acknowledged once the run is claimed
    stub_worker.join()
    assert backlog() == 0
    engine = sync_engine(worker_settings.database_url)
    try:
        deadline = time.monotonic() + 30
        with engine.connect() as conn:  # the run goes on on the worker's event loop
            while (status := conn.execute(select(RUNS.c.status).where(RUNS.c.id == run.id)).scalar()) in (
                "queued",
                "in_progress",
            ):
                assert time.monotonic() < deadline, f"the run is still {status}"
                time.sleep(0.05)
                conn.rollback()
            answers = (
                conn.execute(select(MESSAGES.c.content).where(MESSAGES.c.run_id == run.id)).scalars().all()
            )
    finally:
        engine.dispose()
    assert status == "completed"
    assert [a[0]["text"]["value"] for a in answers] == ["You said: hi"]
