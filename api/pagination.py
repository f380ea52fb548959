"""Cursor pagination as OpenAI does it: limit, order, after, before; first_id, last_id, has_more."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Protocol, TypeVar

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Table
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import BadRequest, NotFound
from api.responses import WireObject, listing
from core.errors import BadCursor
from core.store import RunStore


class ListParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


Listing = Annotated[ListParams, Query()]


W = TypeVar("W", bound=WireObject)
W_co = TypeVar("W_co", bound=WireObject, covariant=True)


class Listed(Protocol[W_co]):
    """A table model that lists: an id, `seq` (the creation order) and its wire object."""

    id: str
    seq: int

    def to_openai(self) -> W_co: ...


async def page(
    session: AsyncSession,
    table: type[Listed[W]],
    params: ListParams,
    *where: ColumnElement[bool],
    shape: Callable[[W], W] | None = None,
) -> Response:
    """One page of `table` rows matching `where`, ordered by creation; `shape` adjusts each wire object."""
    rows, has_more = await page_rows(session, table, params, *where)
    items = [r.to_openai() for r in rows]
    return listing([shape(i) for i in items] if shape else items, has_more)


async def page_rows(
    session: AsyncSession,
    table: Any,
    params: ListParams,
    *where: ColumnElement[bool],
    cursors: Sequence[ColumnElement[bool]] | None = None,
) -> tuple[list[Any], bool]:
    """One page of `table` rows matching `where`, in the list's order (`seq`), and whether more follow.

    `after` and `before` must name a row matching `cursors` (by default, `where`): a list filtered
    by something that changes, as a run's status, still pages on from a row that no longer matches."""
    seq = col(table.seq)
    query = select(table).where(*where)
    backwards = False
    scope = where if cursors is None else cursors
    for cursor, name in ((params.after, "after"), (params.before, "before")):
        if cursor is None:
            continue
        cursor_seq = (await session.exec(select(seq).where(col(table.id) == cursor, *scope))).first()
        if cursor_seq is None:
            raise BadRequest(f"Invalid '{name}': no object with id '{cursor}' in this list.", param=name)
        ascending = (params.order == "asc") == (name == "after")
        query = query.where(seq > cursor_seq if ascending else seq < cursor_seq)
        backwards = backwards or name == "before"
    ascending = (params.order == "asc") != backwards
    query = query.order_by(seq.asc() if ascending else seq.desc()).limit(params.limit + 1)
    rows = list((await session.exec(query)).all())
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    if backwards:
        rows.reverse()
    return rows, has_more


async def owned_page(
    store: RunStore,
    kind: str,
    parent: Table,
    parent_id: str,
    table: Table,
    where: dict[str, Any],
    params: ListParams,
    project: str,
) -> tuple[list[Any], bool]:
    """One page of a parent's children (a thread's messages) through the run store, or 404 (no
    `kind` found) if the parent is not the caller's. The children carry their project: a page with rows proves the
    parent is the caller's, so only an empty page (or a cursor not found) reads the parent."""
    try:
        rows, has_more = await store.page(table, where | {"project": project}, params)
    except BadCursor:
        await _check_parent(store, kind, parent, parent_id, project)
        raise
    if not rows:
        await _check_parent(store, kind, parent, parent_id, project)
    return rows, has_more


async def _check_parent(store: RunStore, kind: str, parent: Table, parent_id: str, project: str) -> None:
    if await store.owned(parent, parent_id, project) is None:
        raise NotFound.of(kind, parent_id)
