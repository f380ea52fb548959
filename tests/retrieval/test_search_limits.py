"""What one search may cost: the API caps a query's length (400), the file_search tool cuts a
long query and says so, and the search itself reads a bounded part of any query (issue 17).

Before the caps, `"w " * 500000` took 268 s of CPU, nearly all of it embedding 500,000 word pieces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from core.config import Settings
from core.db import async_engine
from retrieval.keywords import BM25
from tests.conftest import KEY_A, ScriptedModel, Server, start_embedded, stop
from workers.tools.file_search import file_search

HUGE = "w " * 500_000  # 1 MB: a million word pieces for the embedding model
DOC = b"Ocean tides are caused by the gravity of the Moon and the Sun pulling on the Earth's seas."


def distinct_words(n: int) -> str:
    """`n` different words, the worst case for stemming."""
    return " ".join(f"tide{i}x" for i in range(n))


def test_bm25_scores_a_bounded_part_of_a_query() -> None:
    """A query of 200,000 distinct words costs no more than its first thousand; the index's
    stem memo does not grow with the words of queries."""
    bm25 = BM25(["ocean tides follow the moon", "bread needs flour and water"])
    memo = len(bm25.analyzer._stems)
    started = time.monotonic()
    terms = bm25.query_terms("tides " + distinct_words(200_000))
    assert time.monotonic() - started < 1.0
    assert len(terms) == 1 and len(bm25.analyzer._stems) == memo


def _search(server: Server, store_id: str, query: Any, timeout: float) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/vector_stores/{store_id}/search",
        json={"query": query},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=timeout,
    )


CAP = 600_000  # far past what the search reads of a query: its cost must not follow the cap


@pytest.fixture(scope="module")
def limited(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An operator who lifted the cap far past any sense."""
    server = start_embedded(
        model_server, tmp_path_factory.mktemp("limits"), extra={"ASSISTD_SEARCH_QUERY_MAX_CHARS": str(CAP)}
    )
    yield server
    stop(server.procs)


@pytest.fixture(scope="module")
def store_id(limited: Server) -> str:
    file_id = limited.client().files.create(file=("tides.txt", DOC), purpose="assistants").id
    store = limited.client().vector_stores.create(name="limits")
    done = limited.client().vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=file_id)
    assert done.status == "completed", done.last_error
    return store.id


def test_a_query_past_the_cap_is_refused_at_once(limited: Server, store_id: str) -> None:
    for query in (HUGE, ["tides", HUGE]):
        started = time.monotonic()
        got = _search(limited, store_id, query, timeout=20)
        assert got.status_code == 400 and time.monotonic() - started < 5
        error = got.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "string_above_max_length"
        assert error["param"] == ("query" if isinstance(query, str) else "query[1]")


def test_a_query_under_the_cap_costs_a_bounded_time(limited: Server, store_id: str) -> None:
    """Just under the cap, of one word repeated (a million word pieces unbounded) or of words
    the index never saw (stemming): a few seconds at most."""
    for query in (f"moon tides {HUGE}"[: CAP - 1], distinct_words(CAP)[: CAP - 1]):
        started = time.monotonic()
        got = _search(limited, store_id, ["tides moon", query], timeout=60)
        assert got.status_code == 200 and time.monotonic() - started < 10
        assert got.json()["data"][0]["filename"] == "tides.txt"
    assert got.json()["search_query"] == ["tides moon", query]  # what was asked, not what was read


def test_the_file_search_tool_cuts_a_long_query(limited: Server, store_id: str) -> None:
    """The model's query past the cap is searched by its start, and the model is told so; the run goes on."""
    thread = limited.client().beta.threads.create(
        tool_resources={"file_search": {"vector_store_ids": [store_id]}}
    )
    settings = Settings(database_url=limited.env["ASSISTD_DATABASE_URL"], search_query_max_chars=CAP)
    run = SimpleNamespace(
        id="run_x",
        thread_id=thread.id,
        assistant_id="asst_none",
        project="proj_a",
        tools=[{"type": "file_search"}],
        tool_resources=None,
    )

    async def go(arguments: str) -> tuple[str, dict[str, Any]]:
        engine = async_engine(settings.database_url)
        try:
            return await file_search(engine, settings, run, arguments)
        finally:
            await engine.dispose()

    started = time.monotonic()
    output, call = asyncio.run(go('{"query": "moon tides ' + HUGE + '"}'))
    assert time.monotonic() - started < 20
    assert output.startswith(f"Note: queries are limited to {CAP} characters")
    assert call["file_search"]["results"][0]["file_name"] == "tides.txt"
    output, _ = asyncio.run(go('{"query": "moon tides"}'))
    assert not output.startswith("Note")
