"""Cursor pagination as OpenAI does it (api/pagination.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from api.errors import BadRequest
from api.pagination import ListParams, page
from core.db import async_engine, migrate, sessionmaker
from core.models import Assistant
from tests.conftest import fresh_pg_database
from tests.utils import rows


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = (
        f"sqlite:///{tmp_path_factory.mktemp('pages')}/t.db"
        if request.param == "sqlite"
        else fresh_pg_database()
    )
    migrate(url)
    yield url


def listed(url: str, count: int, **params: Any) -> tuple[list[str], dict[str, Any]]:
    """Ids of `count` assistants of a new project, oldest first, and the page `params` ask for;
    a cursor given as an index names that assistant."""

    async def go() -> tuple[list[str], dict[str, Any]]:
        engine = async_engine(url)
        project = "proj_" + secrets.token_hex(4)
        try:
            ids = [(await rows.assistant(engine, project=project)).id for _ in range(count)]
            cursors = {
                k: ids[v] if isinstance(v, int) else v for k, v in params.items() if k in ("after", "before")
            }
            async with sessionmaker(engine)() as session:
                response = await page(
                    session, Assistant, ListParams(**params | cursors), Assistant.project == project
                )
            return ids, json.loads(response.body)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_newest_first_by_default_then_after_the_last(database_url: str) -> None:
    ids, first = listed(database_url, 5, limit=2)
    assert [a["id"] for a in first["data"]] == [ids[4], ids[3]]
    assert (first["first_id"], first["last_id"], first["has_more"], first["object"]) == (
        ids[4],
        ids[3],
        True,
        "list",
    )
    ids, last = listed(database_url, 5, limit=2, after=1)
    assert [a["id"] for a in last["data"]] == [ids[0]] and last["has_more"] is False


def test_before_a_cursor_keeps_the_lists_order(database_url: str) -> None:
    ids, got = listed(database_url, 5, limit=2, order="asc", before=4)
    assert [a["id"] for a in got["data"]] == [ids[2], ids[3]] and got["has_more"] is True
    ids, got = listed(database_url, 5, limit=10, order="desc", before=2)
    assert [a["id"] for a in got["data"]] == [ids[4], ids[3]] and got["has_more"] is False


def test_a_cursor_from_another_list_and_an_empty_list(database_url: str) -> None:
    elsewhere, _ = listed(database_url, 1)  # another project's assistant
    with pytest.raises(BadRequest) as caught:
        listed(database_url, 1, after=elsewhere[0])
    assert caught.value.param == "after"
    _, empty = listed(database_url, 0)
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize("limit", [0, 101])
def test_limit_is_between_1_and_100(limit: int) -> None:
    with pytest.raises(ValidationError):
        ListParams(limit=limit)
