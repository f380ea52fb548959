"""Wire responses: the SDK's own types, dumped once."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel


def wire(obj: BaseModel) -> dict[str, Any]:
    return obj.model_dump(mode="json")


def deleted(object_id: str, kind: str) -> dict[str, Any]:
    return {"id": object_id, "object": f"{kind}.deleted", "deleted": True}


def run_response(obj: BaseModel, poll_after_ms: int) -> JSONResponse:
    """A run, with the header that makes the SDK's *_and_poll helpers poll quickly."""
    return JSONResponse(wire(obj), headers={"openai-poll-after-ms": str(poll_after_ms)})
