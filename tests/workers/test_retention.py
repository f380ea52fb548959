"""Retention (workers/retention.py): expired files and vector stores are deleted with their bytes,
links and chunks; with the operator's policy, unused threads, responses and conversations too,
never one in use. The pass is called directly (SQLite); one test watches a running server do it."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from core.config import Settings
from core.containers import CONTAINER_FILES, CONTAINERS, Container, ContainerFile
from core.db import async_engine, migrate, sync_engine
from core.ids import now
from core.models import (
    FILE_BATCHES,
    FILE_CHUNKS,
    FILES,
    MESSAGES,
    RUNS,
    STEPS,
    THREADS,
    VECTOR_STORE_FILES,
    VECTOR_STORES,
    FileChunk,
    Message,
    RunStep,
    VectorStoreFileBatch,
)
from core.responses import CONVERSATIONS, ITEMS, RESPONSES, Conversation, Item, Response
from core.storage import LocalStorage
from core.uploads import UPLOAD_PARTS, UPLOADS, Upload, UploadPart
from tests.conftest import ScriptedModel, start_embedded
from tests.procs import KEY_A, stop
from tests.utils import rows
from workers.retention import retention_pass

DAY = 86_400


def deleted(kind: str) -> float:
    return REGISTRY.get_sample_value("assistd_retention_deleted_total", {"kind": kind}) or 0.0


def chunk(key: str) -> FileChunk:
    return FileChunk(content_key=key, position=0, text="x", vector=b"\0\0\0\0")


def setup(tmp_path: Path, **settings: Any) -> tuple[str, Settings, LocalStorage]:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    migrate(url)
    return (
        url,
        Settings(database_url=url, files_dir=str(tmp_path / "files"), **settings),
        LocalStorage(str(tmp_path / "files")),
    )


def ids(url: str, table: Any) -> set[str]:
    with sync_engine(url).connect() as conn:
        return set(conn.execute(select(table.c.id)).scalars())


def count(url: str, table: Any, *where: Any) -> int:
    with sync_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


async def with_bytes(
    engine: Any, storage: LocalStorage, parent: Any, children: list[Any], data: bytes
) -> None:
    """`parent` and its `children` as rows, and each child's bytes in storage (upload parts,
    container files)."""
    await rows.insert(engine, parent, *children)
    for child in children:
        storage.save(child.id, io.BytesIO(data), 100)


def test_expired_files_go_with_bytes_links_and_chunks(tmp_path: Path) -> None:
    url, settings, storage = setup(tmp_path)
    t = now()

    async def go() -> dict[str, int]:
        engine = async_engine(url)
        old = await rows.file(engine, id="file-old", expires_at=t - 5)
        live = await rows.file(engine, id="file-live", expires_at=t + 3600)
        forever = await rows.file(engine, id="file-forever")
        for f in (old, live, forever):
            storage.save(f.id, io.BytesIO(b"bytes"), 100)
        store = await rows.vector_store(engine, id="vs_1")
        await rows.insert(
            engine,
            rows.vector_store_file(store.id, old.id, status="completed", content_key="k-old"),
            rows.vector_store_file(store.id, live.id, status="completed", content_key="k-live"),
            chunk("k-old"),
            chunk("k-live"),
        )
        before = deleted("files")
        removed = await retention_pass(engine, storage, settings)
        assert deleted("files") - before == 1
        again = await retention_pass(engine, storage, settings)  # idempotent: nothing left to do
        await engine.dispose()
        assert again["files"] == 0
        return removed

    removed = asyncio.run(go())
    assert removed == {
        "files": 1,
        "vector_stores": 0,
        "uploads": 0,
        "container_files": 0,
        "threads": 0,
        "responses": 0,
        "conversations": 0,
    }
    assert ids(url, FILES) == {"file-live", "file-forever"}
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == ["file-forever", "file-live"]
    assert ids(url, VECTOR_STORE_FILES) == {"file-live"}
    with sync_engine(url).connect() as conn:
        assert set(conn.execute(select(FILE_CHUNKS.c.content_key)).scalars()) == {"k-live"}
        counts = conn.execute(select(VECTOR_STORES.c.file_counts)).scalar_one()
    assert counts["total"] == 1 and counts["completed"] == 1  # recounted, as DELETE /v1/files does


def test_expired_uploads_lose_their_parts(tmp_path: Path) -> None:
    url, settings, storage = setup(tmp_path)
    t = now()
    uploads = {
        "upload_old": ("pending", t - 5),
        "upload_live": ("pending", t + 3600),
        "upload_done": ("completed", t - 5),
    }

    async def go() -> tuple[dict[str, int], dict[str, int]]:
        engine = async_engine(url)
        for upload_id, (status, expires) in uploads.items():
            made = Upload(
                id=upload_id,
                project="p",
                filename="f",
                bytes=10,
                purpose="assistants",
                mime_type="text/plain",
                status=status,
                expires_at=expires,
            )
            parts = [UploadPart(id=f"{upload_id}_part{i}", upload_id=upload_id, bytes=5) for i in range(2)]
            await with_bytes(engine, storage, made, parts, b"12345")
        before = deleted("uploads")
        removed = await retention_pass(engine, storage, settings)
        assert deleted("uploads") - before == 1
        again = await retention_pass(engine, storage, settings)
        await engine.dispose()
        return removed, again

    removed, again = asyncio.run(go())
    assert removed["uploads"] == 1 and again["uploads"] == 0
    with sync_engine(url).connect() as conn:
        statuses = dict(conn.execute(select(UPLOADS.c.id, UPLOADS.c.status)).all())
        parts = set(conn.execute(select(UPLOAD_PARTS.c.upload_id)).scalars())
    assert statuses == {"upload_old": "expired", "upload_live": "pending", "upload_done": "completed"}
    assert parts == {"upload_live", "upload_done"}
    stored = {p.name for p in (tmp_path / "files").iterdir()}
    assert stored == {f"{u}_part{i}" for u in ("upload_live", "upload_done") for i in range(2)}


def test_expired_containers_lose_their_files(tmp_path: Path) -> None:
    url, settings, storage = setup(tmp_path)
    t = now()
    idle = {"cntr_old": t - 21 * 60, "cntr_live": t - 19 * 60}  # 20 minutes: OpenAI's default

    async def go() -> dict[str, int]:
        engine = async_engine(url)
        for container_id, last_active in idle.items():
            files = [
                ContainerFile(
                    id=f"{container_id}_f{i}", container_id=container_id, project="p", path=f"/mnt/data/{i}"
                )
                for i in range(2)
            ]
            made = Container(id=container_id, project="p", name="c", last_active_at=last_active)
            await with_bytes(engine, storage, made, files, b"data")
        before = deleted("container_files")
        removed = await retention_pass(engine, storage, settings)
        assert deleted("container_files") - before == 2
        assert (await retention_pass(engine, storage, settings))["container_files"] == 0
        await engine.dispose()
        return removed

    assert asyncio.run(go())["container_files"] == 2
    assert ids(url, CONTAINERS) == {"cntr_old", "cntr_live"}  # the containers stay, expired
    assert ids(url, CONTAINER_FILES) == {"cntr_live_f0", "cntr_live_f1"}
    assert {p.name for p in (tmp_path / "files").iterdir()} == {"cntr_live_f0", "cntr_live_f1"}


def test_expired_vector_store_goes_its_files_stay(tmp_path: Path) -> None:
    url, settings, storage = setup(tmp_path)
    t = now()

    async def go() -> dict[str, int]:
        engine = async_engine(url)
        f = await rows.file(engine, id="file-1")
        storage.save(f.id, io.BytesIO(b"bytes"), 100)
        gone = await rows.vector_store(engine, id="vs_gone", expires_at=t - 1)
        kept = await rows.vector_store(engine, id="vs_kept", expires_at=t + DAY)
        await rows.insert(
            engine,
            rows.vector_store_file(gone.id, f.id, status="completed", content_key="k-gone"),
            rows.vector_store_file(kept.id, f.id, status="completed", content_key="k-kept"),
            VectorStoreFileBatch(id="vsfb_1", project=rows.PROJECT, vector_store_id=gone.id),
            chunk("k-gone"),
            chunk("k-kept"),
        )
        before = deleted("vector_stores")
        removed = await retention_pass(engine, storage, settings)
        assert deleted("vector_stores") - before == 1
        await engine.dispose()
        return removed

    assert asyncio.run(go())["vector_stores"] == 1
    assert ids(url, VECTOR_STORES) == {"vs_kept"}
    assert count(url, VECTOR_STORE_FILES, VECTOR_STORE_FILES.c.vector_store_id == "vs_gone") == 0
    assert count(url, FILE_BATCHES) == 0 and count(url, FILE_CHUNKS) == 1
    assert ids(url, FILES) == {"file-1"} and (tmp_path / "files" / "file-1").exists()


def test_thread_policy_keeps_recent_and_active_threads(tmp_path: Path) -> None:
    url, settings, storage = setup(tmp_path, retention_thread_days=30)
    old = now() - 40 * DAY

    async def go() -> tuple[dict[str, int], dict[str, int]]:
        engine = async_engine(url)
        # unused for 40 days: goes with its messages, runs and steps
        idle = await rows.thread(engine, id="thread_idle", created_at=old)
        run = await rows.run(engine, idle.id, status="completed", created_at=old)
        await rows.insert(
            engine,
            Message(project=rows.PROJECT, thread_id=idle.id, role="user", content=[], created_at=old),
            RunStep(
                project=rows.PROJECT,
                run_id=run.id,
                thread_id=idle.id,
                assistant_id=run.assistant_id,
                type="message_creation",
                status="completed",
                created_at=old,
            ),
        )
        # old, but a message came yesterday
        recent = await rows.thread(engine, id="thread_recent", created_at=old)
        await rows.message(engine, recent.id, created_at=now() - DAY)
        # old, with a run waiting for tool outputs since then: in use
        busy = await rows.thread(engine, id="thread_busy", created_at=old)
        await rows.run(engine, busy.id, status="requires_action", created_at=old)
        off = await retention_pass(engine, storage, Settings(database_url=url))  # no policy: kept
        before = deleted("threads")
        removed = await retention_pass(engine, storage, settings)
        assert deleted("threads") - before == 1
        await engine.dispose()
        return off, removed

    off, removed = asyncio.run(go())
    assert off["threads"] == 0 and removed["threads"] == 1
    assert ids(url, THREADS) == {"thread_recent", "thread_busy"}
    for table in (MESSAGES, RUNS, STEPS):
        assert count(url, table, table.c.thread_id == "thread_idle") == 0
    assert count(url, RUNS, RUNS.c.thread_id == "thread_busy") == 1


def response(rid: str, created_at: float, previous: str | None = None, **values: Any) -> Response:
    return Response(
        id=rid,
        project=rows.PROJECT,
        model="echo",
        status=values.pop("status", "completed"),
        created_at=created_at,
        previous_response_id=previous,
        **values,
    )


def item(iid: str, created_at: float, **values: Any) -> Item:
    return Item(
        id=iid, project=rows.PROJECT, type="message", created_at=created_at, data={"id": iid}, **values
    )


def test_response_and_conversation_policy(tmp_path: Path) -> None:
    url, settings, storage = setup(tmp_path, retention_response_days=30, retention_conversation_days=30)
    old, recent = now() - 40 * DAY, now() - DAY

    async def go() -> dict[str, int]:
        engine = async_engine(url)
        await rows.insert(
            engine,
            # a chain a recent response continues: all of it stays (its history)
            response("resp_a1", old),
            response("resp_a2", old, "resp_a1"),
            response("resp_a3", recent, "resp_a2"),
            # an old chain nobody continued: goes, with its items
            response("resp_b1", old),
            response("resp_b2", old, "resp_b1"),
            item("msg_b1", old, response_id="resp_b1"),
            # old, still in progress: in use
            response("resp_c", old, status="in_progress"),
            # an idle conversation: goes with its items
            Conversation(id="conv_idle", project=rows.PROJECT, created_at=old),
            item("msg_idle", old, conversation_id="conv_idle"),
            # a conversation with a new item: stays
            Conversation(id="conv_used", project=rows.PROJECT, created_at=old),
            item("msg_used", recent, conversation_id="conv_used"),
            # an old conversation a response is running on (since long ago): in use
            Conversation(id="conv_busy", project=rows.PROJECT, created_at=old),
            response("resp_e", old, status="queued", conversation_id="conv_busy"),
        )
        before = deleted("responses"), deleted("conversations")
        removed = await retention_pass(engine, storage, settings)
        assert (deleted("responses") - before[0], deleted("conversations") - before[1]) == (2, 1)
        await engine.dispose()
        return removed

    removed = asyncio.run(go())
    assert removed["responses"] == 2 and removed["conversations"] == 1
    assert ids(url, RESPONSES) == {"resp_a1", "resp_a2", "resp_a3", "resp_c", "resp_e"}
    assert ids(url, CONVERSATIONS) == {"conv_used", "conv_busy"}
    assert ids(url, ITEMS) == {"msg_used"}


def test_a_running_server_deletes_what_expired(model_server: ScriptedModel, tmp_path: Path) -> None:
    """`assistd serve` with a short interval: a file and a store aged past their expiry are gone."""
    server = start_embedded(model_server, tmp_path, extra={"ASSISTD_RETENTION_INTERVAL_SECONDS": "0.3"})
    try:
        client = server.client(KEY_A)
        f = client.files.create(
            file=("old.txt", b"retention"),
            purpose="assistants",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
        store = client.vector_stores.create(name="old", expires_after={"anchor": "last_active_at", "days": 1})
        assert (tmp_path / f.id).exists()
        with sync_engine(server.env["ASSISTD_DATABASE_URL"]).begin() as conn:  # age them
            conn.execute(update(FILES).where(FILES.c.id == f.id).values(expires_at=now() - 1))
            conn.execute(
                update(VECTOR_STORES).where(VECTOR_STORES.c.id == store.id).values(expires_at=now() - 1)
            )
        deadline = time.time() + 30
        while time.time() < deadline and (client.files.list().data or client.vector_stores.list().data):
            time.sleep(0.2)
        assert not client.files.list().data and not client.vector_stores.list().data
        assert not (tmp_path / f.id).exists()
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'assistd_retention_deleted_total{kind="files"} 1.0' in text
        assert 'assistd_retention_deleted_total{kind="vector_stores"} 1.0' in text
    finally:
        server.close_clients()
        stop(server.procs)
