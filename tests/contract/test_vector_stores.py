"""Vector stores through the official SDK: ingestion by the workers, search, filters, failures.

Both modes: embedded (SQLite, in-process worker, local disk) and distributed (PostgreSQL,
Redis, two workers, S3). Files are tiny: the local MiniLM embeds about ten chunks a second.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI
from openai.types.beta.threads.runs import FileSearchToolCall
from sqlalchemy import func, select, update

from core.config import Settings
from core.db import async_engine, sync_engine
from core.models import FILE_CHUNKS, VECTOR_STORE_FILES, VECTOR_STORES
from tests.conftest import KEY_A, KEY_B, ScriptedModel, Server, start_distributed, start_embedded, stop
from tests.contract.test_streaming import TextSnapshots, streamed_annotations
from workers.tools.citations import annotate
from workers.tools.file_search import file_search

DOCS = {
    "paris.txt": b"The Eiffel Tower in Paris is 330 metres tall. It was built by Gustave Eiffel for the 1889 fair.",
    "bread.md": b"# Sourdough\nA sourdough loaf needs flour, water, salt and a starter; bake it at 250 degrees.",
    "tides.txt": b"Ocean tides are caused by the gravity of the Moon and the Sun pulling on the Earth's seas.",
}


def upload(client: OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def ready_store(client: OpenAI, **batch: Any) -> tuple[Any, dict[str, str]]:
    """A store holding DOCS, ingested; and filename -> file id."""
    ids = {name: upload(client, name, data) for name, data in DOCS.items()}
    store = client.vector_stores.create(name="docs")
    if "files" not in batch:
        batch["file_ids"] = list(ids.values())
    done = client.vector_stores.file_batches.create_and_poll(vector_store_id=store.id, **batch)
    assert done.status == "completed" and done.file_counts.completed == len(DOCS), done
    return client.vector_stores.retrieve(store.id), ids


def db(server: Server) -> Any:
    return sync_engine(server.env["ASSISTD_DATABASE_URL"])


def test_ingest_and_search(server: Server, client: OpenAI) -> None:
    store, ids = ready_store(client)
    assert store.status == "completed" and store.file_counts.completed == 3 and store.file_counts.total == 3
    assert store.usage_bytes > 0 and store.last_active_at is not None
    files = client.vector_stores.files.list(vector_store_id=store.id)
    assert {f.id for f in files} == set(ids.values()) and all(f.status == "completed" for f in files)
    assert files.data[0].chunking_strategy.type == "static"  # auto is reported as its static sizes

    page = client.vector_stores.search(store.id, query="How tall is the Eiffel Tower?")
    assert page.data[0].file_id == ids["paris.txt"] and page.data[0].filename == "paris.txt"
    assert "330 metres" in page.data[0].content[0].text and 0 < page.data[0].score <= 1
    page = client.vector_stores.search(
        store.id, query=["what makes tides", "moon gravity"], max_num_results=1
    )
    assert [r.file_id for r in page.data] == [ids["tides.txt"]]
    strict = client.vector_stores.search(
        store.id, query="sourdough", ranking_options={"score_threshold": 0.99}
    )
    assert all(r.score >= 0.99 for r in strict.data)

    content = client.vector_stores.files.content(ids["bread.md"], vector_store_id=store.id)
    assert [c.type for c in content.data] == ["text"] and "starter" in (content.data[0].text or "")
    with pytest.raises(NotFoundError):
        server.client(KEY_B).vector_stores.search(store.id, query="tides")  # another project's store


def test_filters(server: Server, client: OpenAI) -> None:
    names = list(DOCS)
    files = [
        {"file_id": upload(client, n, DOCS[n]), "attributes": {"topic": t, "year": y, "public": p}}
        for n, t, y, p in zip(names, ["travel", "food", "science"], [1889, 2020, 2024], [True, False, True])
    ]
    store, _ = ready_store(client, files=files)
    by_name = {f["file_id"]: n for f, n in zip(files, names)}

    def found(filters: dict[str, Any]) -> set[str]:
        page = client.vector_stores.search(
            store.id, query="tower bread tides", filters=filters, max_num_results=50
        )
        return {by_name[r.file_id] for r in page.data if r.file_id in by_name}

    assert found({"type": "eq", "key": "topic", "value": "food"}) == {"bread.md"}
    assert found({"type": "ne", "key": "topic", "value": "food"}) == {"paris.txt", "tides.txt"}
    assert found({"type": "gte", "key": "year", "value": 2020}) == {"bread.md", "tides.txt"}
    assert found({"type": "in", "key": "topic", "value": ["travel", "science"]}) == {"paris.txt", "tides.txt"}
    assert found(
        {
            "type": "and",
            "filters": [
                {"type": "eq", "key": "public", "value": True},
                {"type": "lt", "key": "year", "value": 2000},
            ],
        }
    ) == {"paris.txt"}
    assert found(
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "topic", "value": "food"},
                {"type": "nin", "key": "year", "value": [1889, 2020]},
            ],
        }
    ) == {"bread.md", "tides.txt"}
    got = client.vector_stores.search(
        store.id, query="tides", filters={"type": "eq", "key": "topic", "value": "science"}
    )
    assert got.data[0].attributes == {"topic": "science", "year": 2024, "public": True}

    for bad, param in (
        ({"type": "like", "key": "topic", "value": "x"}, "filters.type"),
        ({"type": "and", "filters": [{"type": "eq", "value": 1}]}, "filters.filters[0].key"),
        ({"type": "in", "key": "topic", "value": "food"}, "filters.value"),
    ):
        with pytest.raises(BadRequestError) as info:
            client.vector_stores.search(store.id, query="x", filters=bad)  # type: ignore[arg-type]
        assert info.value.status_code == 400 and info.value.body["param"] == param  # type: ignore[index]
        assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]

    # changing a file's attributes changes what filters see, at once
    first = files[0]["file_id"]
    client.vector_stores.files.update(first, vector_store_id=store.id, attributes={"topic": "food"})
    assert found({"type": "eq", "key": "topic", "value": "food"}) == {"bread.md", "paris.txt"}


def test_failures_and_counts(server: Server, client: OpenAI) -> None:
    store = client.vector_stores.create(name="broken", chunking_strategy={"type": "auto"})
    unsupported = upload(client, "photo.xyz", b"\x00\x01\x02binary")
    corrupt = upload(client, "report.pdf", b"%PDF-1.4 garbage")
    good = upload(client, "tides.txt", DOCS["tides.txt"])
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[unsupported, corrupt, good]
    )
    assert batch.file_counts.failed == 2 and batch.file_counts.completed == 1 and batch.status == "completed"
    errors = {
        f.id: f.last_error
        for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    }
    assert errors[unsupported].code == "unsupported_file" and errors[corrupt].code == "invalid_file"  # type: ignore[union-attr]
    assert errors[good] is None
    failed = client.vector_stores.files.list(vector_store_id=store.id, filter="failed")
    assert {f.id for f in failed} == {unsupported, corrupt}

    with pytest.raises(NotFoundError):
        client.vector_stores.files.create(vector_store_id=store.id, file_id="file-doesnotexist")
    gone = upload(client, "gone.txt", b"a file deleted before it is added")
    client.files.delete(gone)
    with pytest.raises(NotFoundError):
        client.vector_stores.files.create(vector_store_id=store.id, file_id=gone)

    # removing files keeps the counts true
    client.vector_stores.files.delete(corrupt, vector_store_id=store.id)
    client.files.delete(good)  # deleting the file takes it out of every store
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.total, counts.failed, counts.completed) == (1, 1, 0)
    assert client.vector_stores.search(store.id, query="tides moon").data == []
    with pytest.raises(NotFoundError):
        client.vector_stores.files.retrieve(good, vector_store_id=store.id)


def test_bad_parameters(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        client.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            }
        )
    assert "chunk_overlap_tokens" in info.value.body["param"]  # type: ignore[index]
    with pytest.raises(BadRequestError):
        client.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 5000, "chunk_overlap_tokens": 0},
            }
        )
    store = client.vector_stores.create()
    with pytest.raises(BadRequestError):
        client.vector_stores.search(store.id, query="x", max_num_results=51)
    with pytest.raises(NotFoundError):
        client.vector_stores.retrieve("vs_missing")


def test_same_bytes_embedded_once(server: Server, client: OpenAI) -> None:
    data = (
        b"Shared notes: the lighthouse keeper logs every passing ship at dawn. " + str(time.time()).encode()
    )
    file_id = upload(client, "shared.txt", data)
    stores = [client.vector_stores.create(name=f"s{i}") for i in range(2)]
    for store in stores:
        done = client.vector_stores.files.create_and_poll(
            file_id, vector_store_id=store.id, attributes={"n": 1}
        )
        assert done.status == "completed" and done.attributes == {"n": 1}
    # re-adding a file re-ingests it in place: one file, counted once
    again = client.vector_stores.files.create_and_poll(file_id, vector_store_id=stores[0].id)
    assert again.status == "completed" and client.vector_stores.retrieve(stores[0].id).file_counts.total == 1
    engine = db(server)
    with engine.connect() as conn:
        keys = conn.execute(
            select(func.count(func.distinct(FILE_CHUNKS.c.content_key))).where(
                FILE_CHUNKS.c.text.contains("lighthouse keeper")
            )
        ).scalar()
    assert keys == 1
    for store in stores:
        assert client.vector_stores.search(store.id, query="lighthouse ships").data[0].file_id == file_id
    client.vector_stores.delete(stores[0].id)
    assert client.vector_stores.search(stores[1].id, query="lighthouse ships").data[0].file_id == file_id
    client.vector_stores.delete(stores[1].id)
    with engine.connect() as conn:  # the last store gone, its chunks go too
        left = conn.execute(
            select(func.count()).where(FILE_CHUNKS.c.text.contains("lighthouse keeper"))
        ).scalar()
    assert left == 0
    engine.dispose()


def test_store_crud_and_expiry(server: Server, client: OpenAI) -> None:
    store = client.vector_stores.create(
        name="temp", metadata={"k": "v"}, expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert store.expires_at is not None and store.expires_at - store.last_active_at in (
        172_799,
        172_800,
        172_801,
    )
    assert store.status == "completed" and store.file_counts.total == 0
    renamed = client.vector_stores.update(store.id, name="kept", expires_after=None)
    assert renamed.name == "kept" and renamed.expires_at is None and renamed.metadata == {"k": "v"}
    assert store.id in [s.id for s in client.vector_stores.list(limit=100)]
    client.vector_stores.update(store.id, expires_after={"anchor": "last_active_at", "days": 1})
    engine = db(server)  # a day passes
    with engine.begin() as conn:
        conn.execute(
            update(VECTOR_STORES)
            .where(VECTOR_STORES.c.id == store.id)
            .values(last_active_at=time.time() - 86_401, expires_at=time.time() - 1)
        )
    engine.dispose()
    assert client.vector_stores.retrieve(store.id).status == "expired"
    with pytest.raises(BadRequestError):
        client.vector_stores.search(store.id, query="anything")
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_cancel_batch(client: OpenAI) -> None:
    store = client.vector_stores.create()
    ids = [upload(client, f"n{i}.txt", f"note number {i} about nothing much".encode()) for i in range(3)]
    batch = client.vector_stores.file_batches.create(store.id, file_ids=ids)
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status in ("cancelled", "completed")  # it may have finished already
    final = client.vector_stores.file_batches.poll(batch.id, vector_store_id=store.id)
    assert final.file_counts.in_progress == 0 and final.file_counts.total == 3
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert counts.cancelled + counts.completed == 3 and counts.in_progress == 0


def wait_files(client: OpenAI, store_id: str) -> Any:
    for _ in range(300):
        store = client.vector_stores.retrieve(store_id)
        if store.file_counts.in_progress == 0:
            return store
        time.sleep(0.05)
    raise AssertionError(f"{store_id} still ingesting")


def test_tool_resources_and_attachments(server: Server, client: OpenAI) -> None:
    paris = upload(client, "paris.txt", DOCS["paris.txt"])
    assistant = client.beta.assistants.create(
        model="echo",
        tools=[{"type": "file_search"}],
        tool_resources={
            "file_search": {"vector_stores": [{"file_ids": [paris], "metadata": {"made": "by helper"}}]}
        },
    )
    (store_id,) = assistant.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    store = wait_files(client, store_id)
    assert (
        store.file_counts.completed == 1
        and store.metadata == {"made": "by helper"}
        and store.expires_after is None
    )
    assert client.beta.assistants.retrieve(assistant.id).tool_resources.file_search.vector_store_ids == [
        store_id
    ]  # type: ignore[union-attr]

    bread = upload(client, "bread.md", DOCS["bread.md"])
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "bake?",
                "attachments": [{"file_id": bread, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    (thread_store,) = thread.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert thread_store != store_id
    tides = upload(client, "tides.txt", DOCS["tides.txt"])
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="and tides?",
        attachments=[{"file_id": tides, "tools": [{"type": "file_search"}]}],
    )
    made = wait_files(client, thread_store)
    assert made.file_counts.completed == 2 and made.expires_after and made.expires_after.days == 7

    with pytest.raises(NotFoundError):
        client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": ["vs_nope"]}})
    with pytest.raises(BadRequestError):
        client.beta.threads.create(
            tool_resources={
                "file_search": {"vector_store_ids": [store_id], "vector_stores": [{"file_ids": [paris]}]}
            }
        )

    output, call = run_file_search(
        server, thread.id, assistant.id, '{"query": "How tall is the Eiffel Tower?"}'
    )
    results = call["file_search"]["results"]
    assert results[0]["file_id"] == paris and results[0]["file_name"] == "paris.txt"
    assert {r["file_id"] for r in results} <= {paris, bread, tides}
    assert "【0:0†paris.txt】" in output and "330 metres" in output
    assert call["file_search"]["ranking_options"] == {"ranker": "default_2024_08_21", "score_threshold": 0.0}
    FileSearchToolCall.model_validate({"id": "call_1"} | call)

    answer = "It is 330 metres tall 【0:0†paris.txt】."
    step = SimpleNamespace(
        type="tool_calls", step_details={"type": "tool_calls", "tool_calls": [{"id": "c"} | call]}
    )
    (note,) = annotate(answer, [step])
    assert (
        note["file_citation"] == {"file_id": paris}
        and answer[note["start_index"] : note["end_index"]] == note["text"]
    )


def run_file_search(
    server: Server, thread_id: str, assistant_id: str, arguments: str
) -> tuple[str, dict[str, Any]]:
    """The file_search tool as a worker runs it, against the server's database."""
    settings = Settings(database_url=server.env["ASSISTD_DATABASE_URL"])
    run = SimpleNamespace(
        id="run_x",
        thread_id=thread_id,
        assistant_id=assistant_id,
        project="proj_a",
        tools=[{"type": "file_search"}],
        tool_resources=None,
    )

    async def go() -> tuple[str, dict[str, Any]]:
        engine = async_engine(settings.database_url)
        try:
            return await file_search(engine, settings, run, arguments)
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def remote_embedded(
    model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Embedded mode with a remote embedding model: the scripted model's /v1/embeddings."""
    server = start_embedded(
        model_server,
        tmp_path_factory.mktemp("remote-embed"),
        extra={"ASSISTD_EMBEDDINGS_MODEL": "hashed-words"},
    )
    yield server
    stop(server.procs)


def test_remote_embedding_model(remote_embedded: Server) -> None:
    client = remote_embedded.client()
    store, ids = ready_store(client)
    page = client.vector_stores.search(store.id, query="sourdough starter flour")
    assert page.data[0].file_id == ids["bread.md"]
    engine = db(remote_embedded)
    with engine.connect() as conn:
        model, endpoint = conn.execute(
            select(VECTOR_STORES.c.embedding_model, VECTOR_STORES.c.embedding_endpoint).where(
                VECTOR_STORES.c.id == store.id
            )
        ).one()
        dims = {len(v) // 4 for v in conn.execute(select(FILE_CHUNKS.c.vector)).scalars()}
    engine.dispose()
    assert model == "hashed-words" and endpoint == remote_embedded.env["OPENAI_BASE_URL"] and dims == {64}


def test_remote_model_ingests_files_in_groups(remote_embedded: Server) -> None:
    """With an external model, a batch's files are claimed, embedded and written in groups; each
    file still ends on its own: bytes seen twice are embedded once, a bad file fails alone."""
    client = remote_embedded.client()
    trees = ["oak", "elm", "ash", "fir", "yew", "pine", "birch", "alder"]
    docs = {f"tree{i}.txt": f"Note {i}: the {t} grows by the river.".encode() for i, t in enumerate(trees)}
    docs |= {"copy.txt": docs["tree0.txt"], "picture.xyz": b"\x00\x01"}
    ids = {name: upload(client, name, data) for name, data in docs.items()}
    store = client.vector_stores.create(name="groups")
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=list(ids.values())
    )
    assert batch.status == "completed", batch
    assert (batch.file_counts.completed, batch.file_counts.failed, batch.file_counts.total) == (9, 1, 10)
    bad = client.vector_stores.files.retrieve(ids["picture.xyz"], vector_store_id=store.id)
    assert bad.status == "failed" and bad.last_error is not None and bad.last_error.code == "unsupported_file"
    original = client.vector_stores.files.retrieve(ids["tree0.txt"], vector_store_id=store.id)
    copy = client.vector_stores.files.retrieve(ids["copy.txt"], vector_store_id=store.id)
    assert copy.usage_bytes == original.usage_bytes > 0
    content = client.vector_stores.files.content(ids["tree3.txt"], vector_store_id=store.id)
    assert [c.text for c in content.data] == ["Note 3: the fir grows by the river."]
    assert client.vector_stores.search(store.id, query="fir").data[0].file_id == ids["tree3.txt"]
    engine = db(remote_embedded)
    with engine.connect() as conn:
        keys = dict(
            conn.execute(
                select(VECTOR_STORE_FILES.c.id, VECTOR_STORE_FILES.c.content_key).where(
                    VECTOR_STORE_FILES.c.vector_store_id == store.id
                )
            ).all()
        )
        stored = conn.execute(
            select(func.count())
            .select_from(FILE_CHUNKS)
            .where(FILE_CHUNKS.c.content_key == keys[ids["tree0.txt"]])
        ).scalar()
    engine.dispose()
    assert keys[ids["copy.txt"]] == keys[ids["tree0.txt"]] and stored == 1
    assert len({keys[ids[f"tree{i}.txt"]] for i in range(len(trees))}) == len(trees)


def test_killed_worker_file_is_finished_by_another(model_server: ScriptedModel, tmp_path: Path) -> None:
    """A worker killed while it embeds a file: its lease lapses, the sweeper sends the file again
    and the other worker ingests it."""
    server = start_distributed(
        model_server,
        tmp_path,
        workers=2,
        extra={
            "ASSISTD_EMBEDDINGS_MODEL": "hashed-words",
            "ASSISTD_INGEST_LEASE_SECONDS": "2",
            "ASSISTD_SWEEP_INTERVAL_SECONDS": "0.5",
        },
    )
    engine = db(server)
    try:
        client = server.client()
        file_id = upload(client, "slow.txt", b"Tides follow the Moon. [slow-embedding 3000 ms]")
        store = client.vector_stores.create(name="crash")
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
        owner_of = select(VECTOR_STORE_FILES.c.owner).where(VECTOR_STORE_FILES.c.id == file_id)
        deadline = time.monotonic() + 20
        while True:
            with engine.connect() as conn:
                owner = conn.execute(owner_of).scalar()
            if owner is not None:
                break
            assert time.monotonic() < deadline, "no worker claimed the file"
            time.sleep(0.05)
        victim = next(p for p in server.procs[1:] if p.pid == int(owner.split(":")[1]))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        deadline = time.monotonic() + 30
        while (
            done := client.vector_stores.files.retrieve(file_id, vector_store_id=store.id)
        ).status == "in_progress":
            assert time.monotonic() < deadline, "the file was not finished by the other worker"
            time.sleep(0.2)
        assert done.status == "completed" and done.usage_bytes > 0
        with engine.connect() as conn:
            row = conn.execute(select(VECTOR_STORE_FILES).where(VECTOR_STORE_FILES.c.id == file_id)).one()
        assert row.attempts == 2 and row.owner is None and row.owner != owner
        content = client.vector_stores.files.content(file_id, vector_store_id=store.id)
        assert "Tides follow the Moon" in (content.data[0].text or "")
    finally:
        engine.dispose()
        stop(server.procs)


def test_run_with_file_search_cites_the_file(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    """The scripted model searches, then answers with a marker: the message cites the file."""
    store, ids = ready_store(client)
    answer = "It is 330 metres tall【0:0†paris.txt】."
    model = model_server.script(
        f"fs-{time.time()}",
        [
            {
                "tool_calls": [
                    {
                        "id": "call_fs",
                        "name": "file_search",
                        "arguments": '{"query": "How tall is the Eiffel Tower?"}',
                    }
                ]
            },
            {"content": answer},
        ],
    )
    assistant = client.beta.assistants.create(
        model=model,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "How tall is the Eiffel Tower?"}]},
    )
    assert run.status == "completed", run.last_error
    # the model read the excerpts back, best first, with their markers
    sent = model_server.requests(model)[-1]["body"]["messages"]
    assert (
        sent[-1]["role"] == "tool"
        and "【0:0†paris.txt】" in sent[-1]["content"]
        and "330 metres" in sent[-1]["content"]
    )
    steps = client.beta.threads.runs.steps.list(
        run_id=run.id,
        thread_id=run.thread_id,
        order="asc",
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    (call,) = steps.data[0].step_details.tool_calls
    assert isinstance(call, FileSearchToolCall) and call.file_search.results[0].file_id == ids["paris.txt"]
    assert "330 metres" in call.file_search.results[0].content[0].text
    plain = client.beta.threads.runs.steps.retrieve(steps.data[0].id, run_id=run.id, thread_id=run.thread_id)
    assert plain.step_details.tool_calls[0].file_search.results[0].content is None
    message = client.beta.threads.messages.list(thread_id=run.thread_id, run_id=run.id).data[0]
    text = message.content[0].text
    assert text.value == answer
    (cite,) = text.annotations
    assert cite.type == "file_citation" and cite.file_citation.file_id == ids["paris.txt"]
    assert text.value[cite.start_index : cite.end_index] == cite.text == "【0:0†paris.txt】"


def test_streamed_run_carries_its_citation_in_a_delta(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    """The citation reaches a streaming client in a thread.message.delta, not only in the
    completed message, and the SDK's accumulated text ends up annotated, its text not repeated."""
    store, ids = ready_store(client)
    answer = "It is 330 metres tall【0:0†paris.txt】."
    search = {"id": "call_fs", "name": "file_search", "arguments": '{"query": "Eiffel Tower height"}'}
    model = model_server.script(f"fs-stream-{time.time()}", [{"tool_calls": [search]}, {"content": answer}])
    assistant = client.beta.assistants.create(
        model=model,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "How tall is the Eiffel Tower?"}]},
        event_handler=TextSnapshots(),
    ) as stream:
        stream.until_done()
        (message,) = stream.get_final_messages()
    text = message.content[0].text
    assert text.value == answer
    (cite,) = streamed_annotations(stream, text)
    assert cite.type == "file_citation" and cite.file_citation.file_id == ids["paris.txt"]
    assert answer[cite.start_index : cite.end_index] == cite.text == "【0:0†paris.txt】"


def test_message_attachment_for_file_search(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    """A file attached to a message for file_search lands in the thread's new vector store; the run waits for it."""
    file_id = upload(client, "tides.txt", DOCS["tides.txt"])
    model = model_server.script(
        f"fsa-{time.time()}",
        [
            {
                "tool_calls": [
                    {"id": "call_t", "name": "file_search", "arguments": '{"query": "What causes tides?"}'}
                ]
            },
            {"content": "The Moon and the Sun【0:0†tides.txt】."},
        ],
    )
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "retrieval"}])
    assert [t.type for t in assistant.tools] == ["file_search"]
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "messages": [
                {
                    "role": "user",
                    "content": "What causes tides?",
                    "attachments": [{"file_id": file_id, "tools": [{"type": "file_search"}]}],
                }
            ]
        },
    )
    assert run.status == "completed", run.last_error
    thread = client.beta.threads.retrieve(run.thread_id)
    (store_id,) = thread.tool_resources.file_search.vector_store_ids
    assert client.vector_stores.files.retrieve(file_id, vector_store_id=store_id).status == "completed"
    message = client.beta.threads.messages.list(thread_id=run.thread_id, run_id=run.id).data[0]
    assert message.content[0].text.annotations[0].file_citation.file_id == file_id


def test_wire_shapes_match_the_sdk_types(server: Server, client: OpenAI) -> None:
    """Raw JSON validated against the SDK's types (the SDK itself builds objects without checking)."""
    from openai.types import VectorStore, VectorStoreSearchResponse
    from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

    store, ids = ready_store(client)
    headers = {"Authorization": f"Bearer {KEY_A}"}
    base = f"{server.url}/v1/vector_stores/{store.id}"

    def get(path: str, **kw: Any) -> Any:
        response = httpx.request(kw.pop("method", "GET"), base + path, headers=headers, timeout=30, **kw)
        assert response.status_code == 200, response.text
        return response.json()

    VectorStore.model_validate(get(""))
    listed = get("/files")
    assert listed["object"] == "list" and listed["first_id"] and listed["has_more"] is False
    for item in listed["data"]:
        VectorStoreFile.model_validate(item)
    page = get("/search", method="POST", json={"query": "Eiffel Tower height"})
    assert page["object"] == "vector_store.search_results.page"
    for hit in page["data"]:
        VectorStoreSearchResponse.model_validate(hit)
    assert page["data"][0]["file_id"] == ids["paris.txt"]
    batch = httpx.post(
        base + "/file_batches", headers=headers, json={"file_ids": [ids["paris.txt"]]}, timeout=30
    )
    VectorStoreFileBatch.model_validate(batch.json())


def test_a_file_that_breaks_its_group_costs_the_others_nothing(remote_embedded: Server) -> None:
    """A file whose bytes cannot be read fails the group's common step; the group's other files
    are then ingested one at a time and complete, and only the broken one is left to retry."""
    client = remote_embedded.client()
    docs = {f"lake{i}.txt": f"Lake note {i}: the water is {i} degrees.".encode() for i in range(5)}
    ids = {name: upload(client, name, data) for name, data in docs.items()}
    broken = upload(client, "broken.txt", b"these bytes go missing")
    matches = list(Path(remote_embedded.env["ASSISTD_FILES_DIR"]).rglob(f"{broken}*"))
    assert matches, "the uploaded file's bytes were not found on disk"
    for path in matches:
        path.unlink()
    store = client.vector_stores.create(name="one bad apple")
    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=[*ids.values(), broken]
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        batch = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
        if batch.file_counts.completed == len(ids):
            break
        time.sleep(0.2)
    assert batch.file_counts.completed == len(ids), batch.file_counts
    assert client.vector_stores.files.retrieve(broken, vector_store_id=store.id).status != "completed"
    assert client.vector_stores.search(store.id, query="water degrees").data
