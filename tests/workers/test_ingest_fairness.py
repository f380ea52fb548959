"""Ingestion is fair between projects, and a detached file's ingestion stops (issue 17).

Before: three large files of one project held another project's one-line file in_progress for
minutes (each file kept its worker's slot until its last chunk), and a detached file kept the
worker embedding it until the running embedding call ended (the whole file, with a large
`ASSISTD_EMBEDDINGS_BATCH_SIZE`)."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from sqlalchemy import func, select

from core.db import sync_engine
from core.models import FILE_CHUNKS, VECTOR_STORE_FILES
from tests import procs
from tests.conftest import KEY_A, KEY_B, ScriptedModel, Server, stop

SMALL_CHUNKS = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}


def start_embedded(model: ScriptedModel, tmp: Path, extra: dict[str, str]) -> Server:
    """`assistd serve` as tests/procs.py starts it, with more patience on a loaded machine."""
    port = procs.free_port()
    env = (
        procs.base_env(model)
        | {
            "ASSISTD_DATABASE_URL": f"sqlite:///{tmp}/assistd.db",
            "ASSISTD_FILES_DIR": str(tmp),
            "ASSISTD_REDIS_NAMESPACE": procs.TEST_NAMESPACE + secrets.token_hex(4),
        }
        | extra
    )
    proc = procs.spawn(
        [sys.executable, "-m", "assistd", "serve", "--port", str(port)], env, tmp / "serve.log"
    )
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=120)
    except BaseException:
        stop([proc])
        raise
    return Server("embedded", f"http://127.0.0.1:{port}", env, [proc])


def slow_file(notes: int, ms: int) -> bytes:
    """A file whose every chunk makes the scripted endpoint wait `ms` per embedding request."""
    return "\n".join(f"Tide note {i} [slow-embedding {ms} ms]" for i in range(notes)).encode()


def upload(client: OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def owners(server: Server, file_ids: list[str]) -> dict[str, Any]:
    engine = sync_engine(server.env["ASSISTD_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return dict(
                conn.execute(
                    select(VECTOR_STORE_FILES.c.id, VECTOR_STORE_FILES.c.owner).where(
                        VECTOR_STORE_FILES.c.id.in_(file_ids)
                    )
                ).all()
            )
    finally:
        engine.dispose()


def wait_claimed(server: Server, file_ids: list[str], n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sum(o is not None for o in owners(server, file_ids).values()) < n:
        assert time.monotonic() < deadline, "the worker did not claim the files"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def remote(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker (embedded), two ingestion turns, an external model that answers as slowly as told."""
    server = start_embedded(
        model_server,
        tmp_path_factory.mktemp("fair"),
        extra={
            "ASSISTD_EMBEDDINGS_MODEL": "hashed-words",
            "ASSISTD_EMBEDDINGS_BATCH_SIZE": "2",
            "ASSISTD_INGEST_CONCURRENCY": "2",
        },
    )
    yield server
    stop(server.procs)


def test_a_small_file_is_not_held_behind_another_projects_large_files(remote: Server) -> None:
    a, b = remote.client(KEY_A), remote.client(KEY_B)
    # three large files, each about 30 embedding requests of 0.3 s: 9 s each, two at a time
    large = [upload(a, f"large{i}.txt", slow_file(480, 300)) for i in range(3)]
    stores = [a.vector_stores.create(name=f"large{i}") for i in range(3)]
    for store, file_id in zip(stores, large):
        a.vector_stores.files.create(
            vector_store_id=store.id, file_id=file_id, chunking_strategy=SMALL_CHUNKS
        )
    wait_claimed(remote, large, 2)
    started = time.monotonic()
    small = upload(b, "note.txt", b"One line about the moon.")
    store = b.vector_stores.create(name="small")
    done = b.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=small)
    took = time.monotonic() - started
    waiting = [
        f
        for f, s in zip(large, stores)
        if a.vector_stores.files.retrieve(f, vector_store_id=s.id).status == "in_progress"
    ]
    assert done.status == "completed" and took < 4, took
    assert len(waiting) >= 2  # project A's files are still being ingested
    for s in stores:  # deleting the stores stops their ingestion
        a.vector_stores.delete(s.id)


@pytest.fixture(scope="module")
def local(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The local model, one ingestion turn, an embedding call as large as an operator may set it."""
    server = start_embedded(
        model_server,
        tmp_path_factory.mktemp("detach"),
        extra={"ASSISTD_EMBEDDINGS_BATCH_SIZE": "1000", "ASSISTD_INGEST_CONCURRENCY": "1"},
    )
    yield server
    stop(server.procs)


def test_a_detached_files_ingestion_stops(local: Server) -> None:
    """Detached while the local model embeds it, a large file (200,000 word pieces, tens of seconds
    of CPU) gives up the worker's one turn within one small embedding call: the file queued
    behind it is done in seconds, and none of the large file's chunks is ever written."""
    client = local.client()
    words = " ".join(f"zephyr{i} drifts over the quiet harbour at dawn." for i in range(16_000))
    large = upload(client, "large.txt", words.encode())
    store = client.vector_stores.create(name="detach")
    client.vector_stores.files.create(vector_store_id=store.id, file_id=large, chunking_strategy=SMALL_CHUNKS)
    wait_claimed(local, [large], 1)
    time.sleep(1)
    small = upload(client, "note.txt", b"One line about the moon.")
    behind = client.vector_stores.create(name="behind")
    client.vector_stores.files.create(vector_store_id=behind.id, file_id=small)
    client.vector_stores.files.delete(large, vector_store_id=store.id)
    detached = time.monotonic()
    while (
        got := client.vector_stores.files.retrieve(small, vector_store_id=behind.id)
    ).status == "in_progress":
        assert time.monotonic() - detached < 15, "the worker kept ingesting the detached file"
        time.sleep(0.1)
    assert got.status == "completed"
    engine = sync_engine(local.env["ASSISTD_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            chunks = conn.execute(
                select(func.count()).select_from(FILE_CHUNKS).where(FILE_CHUNKS.c.text.like("%zephyr%"))
            ).scalar()
    finally:
        engine.dispose()
    assert chunks == 0
