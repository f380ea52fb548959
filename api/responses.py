"""Wire responses: the SDK's own types, serialised once by pydantic-core.

Handlers return these Response objects directly, so FastAPI neither re-validates nor
re-encodes the body (both cost more than the database work on a typical request).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel


class WireObject(Protocol):
    """An object of the SDK's types that lists carry: it has an id."""

    @property
    def id(self) -> str: ...

    def model_dump_json(self) -> str: ...


def wire(obj: BaseModel, headers: dict[str, str] | None = None) -> Response:
    return Response(obj.model_dump_json(), media_type="application/json", headers=headers)


def listing(items: Sequence[WireObject], has_more: bool) -> Response:
    body = ",".join(item.model_dump_json() for item in items)
    first = f'"{items[0].id}"' if items else "null"
    last = f'"{items[-1].id}"' if items else "null"
    has = "true" if has_more else "false"
    text = f'{{"object":"list","data":[{body}],"first_id":{first},"last_id":{last},"has_more":{has}}}'
    return Response(text, media_type="application/json")


def deleted(object_id: str, kind: str) -> Response:
    return JSONResponse({"id": object_id, "object": f"{kind}.deleted", "deleted": True})


def run_response(obj: BaseModel, poll_after_ms: int) -> Response:
    """A run, with the header that makes the SDK's *_and_poll helpers poll quickly."""
    return wire(obj, {"openai-poll-after-ms": str(poll_after_ms)})
