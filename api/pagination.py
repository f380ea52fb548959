"""Cursor pagination as OpenAI does it: limit, order, after, before; first_id, last_id, has_more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import BadRequest
from api.responses import listing


class ListParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


Listing = Annotated[ListParams, Query()]


async def page(
    session: AsyncSession, table: type[SQLModel], params: ListParams, *where: ColumnElement[bool],
    shape: Callable[[Any], Any] = lambda obj: obj,
) -> Response:
    """One page of `table` rows matching `where`, ordered by creation; `shape` adjusts each wire object."""
    seq: Any = table.seq  # type: ignore[attr-defined]
    query = select(table).where(*where)
    backwards = False
    for cursor, name in ((params.after, "after"), (params.before, "before")):
        if cursor is None:
            continue
        cursor_seq = (await session.exec(select(seq).where(table.id == cursor, *where))).first()  # type: ignore[call-overload, attr-defined]
        if cursor_seq is None:
            raise BadRequest(f"Invalid '{name}': no object with id '{cursor}' in this list.", param=name)
        ascending = (params.order == "asc") == (name == "after")
        query = query.where(seq > cursor_seq if ascending else seq < cursor_seq)
        backwards = backwards or name == "before"
    ascending = (params.order == "asc") != backwards
    query = query.order_by(seq.asc() if ascending else seq.desc()).limit(params.limit + 1)
    rows = list((await session.exec(query)).all())  # type: ignore[call-overload]
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    if backwards:
        rows.reverse()
    return listing([shape(r.to_openai()) for r in rows], has_more)
