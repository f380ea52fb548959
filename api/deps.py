"""Request dependencies: the caller's project (from the API key) and a database session."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Unauthorized
from core import logs

PROJECT_SCOPE_KEY = logs.PROJECT_KEY  # where the Gate leaves the project of a checked key


def bearer(header: str) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header, None for any other header.

    The scheme is case-insensitive and may be followed by several spaces, as RFC 9110 11.1 and
    11.4 allow (`bearer  KEY` is accepted).
    """
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def authenticate(header: str, keys: dict[str, str]) -> str:
    """The project of the key in an Authorization header; 401 in OpenAI's words otherwise."""
    key = bearer(header)
    if key is None:
        raise Unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    if not keys:  # embedded mode without configured keys: one default project
        return "default"
    # compared with every configured key in constant time: how long a wrong key took to be
    # refused must not tell how much of it was right
    presented, project = key.encode(), None
    for known, owner in keys.items():
        if hmac.compare_digest(known.encode(), presented):
            project = owner
    if project is None:
        shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
        raise Unauthorized(f"Incorrect API key provided: {shown}.", code="invalid_api_key")
    return project


async def project_of(request: Request) -> str:
    """The project that owns the presented key (api/limits.py's Gate checked it before the body
    was read; a request that did not pass through it is checked here)."""
    project = request.scope.get(PROJECT_SCOPE_KEY)
    if isinstance(project, str):
        return project
    return authenticate(request.headers.get("authorization", ""), request.app.state.api_keys)


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as s:
        yield s


Project = Annotated[str, Depends(project_of)]
Session = Annotated[AsyncSession, Depends(session)]
