"""The ingestion sweeper: which in_progress vector store files it sends again (SQLite)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.config import Settings
from core.db import async_engine, migrate
from core.ids import now
from core.models import VECTOR_STORE_FILES, VectorStoreFile
from tests.conftest import fresh_pg_database
from tests.utils import rows
from workers.ingest import pipeline as ingest


def attached(file_id: str, **values: Any) -> VectorStoreFile:
    return rows.vector_store_file("vs_1", file_id, **values)


def test_sweep_sends_lost_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    settings = Settings(database_url=url, ingest_requeue_after_seconds=30)
    sent: list[tuple[str, str]] = []
    import core.ingest_queue

    per_message: list[int | None] = []

    def enqueue(store_id: str, file_ids: list[str], per_message_: int | None = None, **kw: Any) -> None:
        sent.extend((store_id, f) for f in file_ids)
        per_message.append(kw.get("per_message", per_message_))

    monkeypatch.setattr(core.ingest_queue, "enqueue_ingest_files", enqueue)
    t = now()
    files = [
        attached("fresh"),  # just sent
        attached("lost", enqueued_at=t - 60),  # its message never arrived
        attached("dead", owner="w1", lease_until=t - 1, enqueued_at=t - 600),  # its worker died
        attached("alive", owner="w2", lease_until=t + 30, enqueued_at=t - 600),  # still being ingested
        attached("done", status="completed", enqueued_at=t - 600),
    ]

    async def go() -> tuple[int, int, list[Any]]:
        engine = async_engine(url)
        await rows.insert(engine, *files)
        n = await ingest.sweep_ingestion(engine, settings)
        everything = await ingest.sweep_ingestion(engine, settings, orphans_now=True)
        async with engine.connect() as conn:
            owners = (await conn.execute(select(VECTOR_STORE_FILES.c.id, VECTOR_STORE_FILES.c.owner))).all()
        await engine.dispose()
        return n, everything, owners

    n, everything, owners = asyncio.run(go())
    assert n == 2 and sorted(f for _, f in sent[:2]) == ["dead", "lost"]
    assert per_message[0] == 1  # a store of the local model (or gone): one file to a message
    assert everything == 4  # at start-up every unfinished file is sent again
    assert dict(owners)["dead"] is None


def test_content_key_follows_bytes_model_and_chunking() -> None:
    class Store:
        embedding_model, embedding_endpoint = "m", None

    a = ingest.content_key(b"x", Store, 800, 400)
    assert a == ingest.content_key(b"x", Store, 800, 400)
    assert len({a, ingest.content_key(b"y", Store, 800, 400), ingest.content_key(b"x", Store, 400, 200)}) == 3
    Store.embedding_model = "other"
    assert ingest.content_key(b"x", Store, 800, 400) != a


def test_one_claim_takes_many_files(tmp_path: Path) -> None:
    """A group of files is claimed in one statement: only those no live worker holds; a file out of
    attempts fails instead of being claimed again."""
    url = f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    settings = Settings(database_url=url, files_dir=str(tmp_path / "files"), ingest_max_attempts=3)
    t = now()
    free = [f"f{i}" for i in range(5)]
    files = [attached(f) for f in free] + [
        attached("held", owner="w2", lease_until=t + 30),  # another worker is on it
        attached("lapsed", owner="w1", lease_until=t - 1, attempts=1),  # its worker died
        attached("spent", attempts=3),
        attached("done", status="completed"),
    ]

    async def go() -> tuple[list[str], list[Any], str, dict[str, Any]]:
        engine = async_engine(url)
        await rows.insert(engine, *files)
        ingestor = ingest.Ingestor(settings)
        try:
            first = await ingestor._claim("vs_1", [f.id for f in files])
            again = await ingestor._claim("vs_1", [f.id for f in files])
            async with engine.connect() as conn:
                state = {r.id: r for r in (await conn.execute(select(VECTOR_STORE_FILES))).all()}
        finally:
            await ingestor.close()
            await engine.dispose()
        return [r.id for r in first], again, ingestor.owner, state

    first, again, owner, state = asyncio.run(go())
    assert sorted(first) == sorted([*free, "lapsed"]) and again == []
    assert all(state[f].owner == owner and state[f].attempts == 1 for f in free)
    assert state["lapsed"].owner == owner and state["lapsed"].attempts == 2
    assert state["held"].owner == "w2" and state["held"].attempts == 0
    assert state["spent"].status == "failed" and state["spent"].last_error["code"] == "server_error"
    assert state["spent"].owner is None
    assert state["done"].status == "completed" and state["done"].owner is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux keeps a nice value per thread")
@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_ingestion_threads_are_niced(tmp_path: Path, database: str) -> None:
    """Ingestion's loop thread and the threads it hands work to run at `ingest_nice`; the caller's
    thread (the worker's run loop) keeps its priority. Not on SQLite: there ingestion's writes
    hold the one write lock everything else waits for."""
    url = fresh_pg_database() if database == "postgresql" else f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    settings = Settings(database_url=url, files_dir=str(tmp_path / "files"), ingest_nice=mine + 7)
    expected = mine + 7 if database == "postgresql" else mine

    async def helper_nice() -> int:
        return await asyncio.to_thread(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    ingest.ingestor(settings)
    try:
        thread = ingest._thread
        assert thread is not None and thread.thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.thread.native_id) == expected
        assert thread.run(helper_nice(), timeout=10) == expected
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    finally:
        ingest.stop_ingestor()
    assert ingest._thread is None and not thread.thread.is_alive()
