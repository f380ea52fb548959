"""Items as rows: the wire objects of a request's items under fresh ids (references copied),
their column values, pages of them, and the token estimate of a prompt they would make."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.responses import Response
from sqlalchemy import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import NotFound
from api.items import PREFIX, GivenItem, InputItem, ItemReference
from api.pagination import ListParams, page_rows
from api.responses import listing
from core.ids import new_id, now, seq
from core.responses import ITEMS, Item, shown
from core.store import RunStore
from core.tokens import tokens


async def wire_items(
    store: RunStore, project: str, items: Sequence[InputItem], param: str
) -> list[dict[str, Any]]:
    """The items' wire objects under fresh ids, in order: every item's shape is checked first
    (the first bad one's 400), then each reference is looked up and copied (404 for an item not
    in the caller's project)."""
    out: list[dict[str, Any] | ItemReference] = []
    for i, item in enumerate(items):
        if isinstance(item, GivenItem):
            out.append(item.wire(new_item_id(item.kind), f"{param}[{i}]"))
        elif isinstance(item, ItemReference):
            out.append(item)
        # an Unsupported item was refused by its validator: none is ever built
    return [
        await copied(store, project, o, f"{param}[{i}]") if isinstance(o, ItemReference) else o
        for i, o in enumerate(out)
    ]


async def copied(store: RunStore, project: str, reference: ItemReference, path: str) -> dict[str, Any]:
    """The wire object of the item a reference names, under a fresh id."""
    row = await store.owned(ITEMS, reference.id, project)
    if row is None:
        raise NotFound(f"Item with id '{reference.id}' not found.", param=f"{path}.id")
    return dict(row.data) | {"id": new_item_id(row.data["type"])}


def new_item_id(kind: str) -> str:
    return new_id(PREFIX.get(kind, "item"))


def item_rows(
    project: str,
    wired: list[dict[str, Any]],
    *,
    response_id: str | None = None,
    conversation_id: str | None = None,
) -> list[dict[str, Any]]:
    """Column values of new items (input items of a response, or items of a conversation), in order."""
    created = now()
    return [
        {
            "id": data["id"],
            "project": project,
            "seq": seq(),
            "created_at": created,
            "type": data["type"],
            "response_id": response_id,
            "output": False,
            "conversation_id": conversation_id,
            "data": data,
        }
        for data in wired
    ]


@dataclass
class Wired:
    """A stored item's wire object, as `listing` serialises it."""

    id: str
    data: dict[str, Any]

    def model_dump_json(self) -> str:
        return json.dumps(self.data)


def listed(rows: Sequence[dict[str, Any]]) -> list[Wired]:
    """New items' rows as `listing` takes them."""
    return [Wired(r["id"], r["data"]) for r in rows]


def count_tokens(
    instructions: str | None, items: list[dict[str, Any]], tools: list[dict[str, Any]], model: str
) -> int:
    """The input tokens of a prompt, counted as a run's prompt is (workers/prompt.py), in the
    model's own tokens where they are known (core/tokens.py): a message's text, 4 per message
    and 85 per image or file; other items and the tool definitions by their JSON."""
    used = tokens(instructions, model) + 4 if instructions else 0
    used += tokens(json.dumps(tools), model) if tools else 0
    for item in items:
        if item.get("type") != "message":
            used += tokens(json.dumps({k: v for k, v in item.items() if k not in ("id", "status")}), model)
            continue
        content = item.get("content") or []
        texts = [p.get("text") or p.get("refusal") or "" for p in content if "text" in p or "refusal" in p]
        used += sum(tokens(t, model) for t in texts) + 4 + 85 * (len(content) - len(texts))
    return used


async def page_items(
    session: AsyncSession, params: ListParams, include: Sequence[str] | None, *where: ColumnElement[bool]
) -> Response:
    """One page of the items matching `where`, ordered by `seq` (api/pagination.py's rules), with
    what `include` asks for."""
    rows, has_more = await page_rows(session, Item, params, *where)
    return listing(
        [Wired(r.id, data) for r, data in zip(rows, shown([r.data for r in rows], include))], has_more
    )
