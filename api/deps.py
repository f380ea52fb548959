"""Request dependencies: the caller's project (from the API key) and a database session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Unauthorized


async def project_of(request: Request) -> str:
    """The project that owns the presented key; 401 in OpenAI's words otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    keys: dict[str, str] = request.app.state.api_keys
    if not keys:  # embedded mode without configured keys: one default project
        return "default"
    project = keys.get(key)
    if project is None:
        shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
        raise Unauthorized(f"Incorrect API key provided: {shown}.", code="invalid_api_key")
    return project


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as s:
        yield s


Project = Annotated[str, Depends(project_of)]
Session = Annotated[AsyncSession, Depends(session)]
