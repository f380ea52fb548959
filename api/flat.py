"""Routers included flat: their routes copied onto the app's own router under a prefix.

FastAPI's `include_router` keeps an included router as a branch that is matched again on the
way down (once to find it, once to dispatch within it, at every level of nesting): with about 70
routes under /v1 that was most of the CPU of a request that does little else (a poll, a health
check), more than the endpoint itself. Copied routes are matched once, in order, as Starlette
matches its own. The copies take every setting of the originals (the router's prefix and
dependencies are in them already), so the OpenAPI schema and the behaviour are unchanged.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, _IncludedRouter

# add_api_route's parameters that an APIRoute keeps under the same name
_KEPT = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in ("self", "path", "endpoint", "route_class_override")
)


def include(
    app: FastAPI,
    router: APIRouter,
    prefix: str,
    tags: list[Any] | None = None,
    dependencies: list[Any] | None = None,
) -> None:
    """Add every route of `router` to `app`, with `prefix` before its path (and the tags and
    dependencies of the includes it sits in before its own, as include_router orders them)."""
    for route in router.routes:
        if isinstance(route, _IncludedRouter):  # a router included in this one
            context = route.include_context
            include(
                app,
                route.original_router,
                prefix + context.prefix,
                [*(tags or []), *context.tags],
                [*(dependencies or []), *context.dependencies],
            )
            continue
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only API routes are included flat")
        settings: dict[str, Any] = {n: getattr(route, n) for n in _KEPT if hasattr(route, n)}
        settings["tags"] = [*(tags or []), *(route.tags or [])]
        settings["dependencies"] = [*(dependencies or []), *route.dependencies]
        app.router.add_api_route(
            prefix + route.path, route.endpoint, route_class_override=type(route), **settings
        )
