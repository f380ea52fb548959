"""Rows read back from SQLite and PostgreSQL map to the SDK's wire types as typed clients need
them: integer timestamps, lists never null, `metadata` under its wire name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.db import async_engine, migrate, sessionmaker
from core.ids import now
from core.models import Assistant, File, Message, Run, Thread, VectorStore
from tests.conftest import fresh_pg_database
from tests.utils import rows


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/t.db" if request.param == "sqlite" else fresh_pg_database()
    migrate(url)
    yield url


def wire_of_stored(url: str) -> dict[str, dict[str, Any]]:
    """Each kind of row, stored by the factories and read back: its wire JSON."""

    async def go() -> dict[str, dict[str, Any]]:
        engine = async_engine(url)
        try:
            thread = await rows.thread(engine, messages=["first", "second"], meta={"k": "v"})
            made = {
                "assistant": await rows.assistant(engine),
                "thread": thread,
                "run": await rows.run(engine, thread_id=thread.id, expires_at=now() + 60),
                "file": await rows.file(engine),
                "vector store": await rows.vector_store(engine),
                "message": await rows.message(engine, thread.id, "third", role="assistant"),
            }
            tables = {
                "assistant": Assistant,
                "thread": Thread,
                "run": Run,
                "file": File,
                "vector store": VectorStore,
                "message": Message,
            }
            async with sessionmaker(engine)() as session:
                return {
                    kind: json.loads((await session.get(tables[kind], row.id)).to_openai().model_dump_json())
                    for kind, row in made.items()
                }
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_stored_rows_on_the_wire(database_url: str) -> None:
    wire = wire_of_stored(database_url)
    for kind, obj in wire.items():
        assert isinstance(obj["created_at"], int), kind
    assistant, thread, run, message = wire["assistant"], wire["thread"], wire["run"], wire["message"]
    assert (assistant["tools"], assistant["metadata"], assistant["response_format"]) == ([], {}, "auto")
    assert thread["metadata"] == {"k": "v"}
    assert (run["status"], run["tools"], run["tool_choice"], run["usage"]) == ("queued", [], "auto", None)
    assert isinstance(run["expires_at"], int)  # an active run shows when it expires
    assert message["content"] == [{"type": "text", "text": {"value": "third", "annotations": []}}]
    assert message["attachments"] == [] and message["role"] == "assistant"
    assert wire["vector store"]["status"] == "completed" and wire["vector store"]["file_counts"]["total"] == 0
    assert wire["file"]["object"] == "file" and wire["file"]["purpose"] == "assistants"
