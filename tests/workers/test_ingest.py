"""The ingestion sweeper: which in_progress vector store files it sends again (SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.config import Settings
from core.db import async_engine, migrate
from core.ids import now
from core.models import VECTOR_STORE_FILES
from workers import ingest


def row(file_id: str, **values: Any) -> dict[str, Any]:
    base = {"vector_store_id": "vs_1", "id": file_id, "project": "p", "seq": 1, "created_at": now(),
            "status": "in_progress", "usage_bytes": 0, "attempts": 0, "enqueued_at": now(), "owner": None,
            "lease_until": None}
    return base | values


def test_sweep_sends_lost_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    settings = Settings(database_url=url, ingest_requeue_after_seconds=30)
    sent: list[tuple[str, str]] = []
    import core.broker

    monkeypatch.setattr(core.broker, "enqueue_ingest", lambda s, f: sent.append((s, f)))
    t = now()
    rows = [
        row("fresh"),  # just sent
        row("lost", enqueued_at=t - 60),  # its message never arrived
        row("dead", owner="w1", lease_until=t - 1, enqueued_at=t - 600),  # its worker died
        row("alive", owner="w2", lease_until=t + 30, enqueued_at=t - 600),  # still being ingested
        row("done", status="completed", enqueued_at=t - 600),
    ]

    async def go() -> tuple[int, int, list[Any]]:
        engine = async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(insert(VECTOR_STORE_FILES), rows)
        n = await ingest.sweep_ingestion(engine, settings)
        everything = await ingest.sweep_ingestion(engine, settings, orphans_now=True)
        async with engine.connect() as conn:
            owners = (await conn.execute(select(VECTOR_STORE_FILES.c.id, VECTOR_STORE_FILES.c.owner))).all()
        await engine.dispose()
        return n, everything, owners

    n, everything, owners = asyncio.run(go())
    assert n == 2 and sorted(f for _, f in sent[:2]) == ["dead", "lost"]
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
