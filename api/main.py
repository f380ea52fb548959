"""The FastAPI application: stores objects and enqueues runs; never calls a model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from api import docs, errors, flat, limits, metrics, observe, ratelimit
from api.routes import (
    assistants,
    containers,
    conversations,
    files,
    messages,
    models,
    playground,
    project_runs,
    responses,
    runs,
    steps,
    threads,
    uploads,
    vector_stores,
)
from core.config import Settings, get_settings
from core.db import async_engine, sessionmaker
from core.events import event_log
from core.storage import storage
from core.store import open_store

log = logging.getLogger("assistd.api")


def create_app(settings: Settings | None = None, enqueue: Callable[[str], None] | None = None) -> FastAPI:
    """The API app. `enqueue` hands a run id to the workers (the broker's by default)."""
    settings = settings or get_settings()
    limiter = ratelimit.limiter(settings)  # None without rate limits: the Gate then checks none

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        size, pooler = settings.database_pool_size, settings.database_pooler
        engine = async_engine(settings.database_url, pool_size=size, pooler=pooler)
        app.state.sessions = sessionmaker(engine)
        # a run's creation, without an ORM session (on PostgreSQL, without SQLAlchemy: core/store/pg.py)
        app.state.store = open_store(settings.database_url, size=size, pooler=pooler)
        depth = asyncio.create_task(metrics.refresh_queue_depth(app.state.sessions))
        yield
        depth.cancel()
        await event_log().aclose()
        if (close := getattr(app.state.enqueue, "aclose", None)) is not None:
            await close()
        if limiter is not None:
            await limiter.counters.aclose()
        await app.state.store.close()
        await engine.dispose()

    # the docs pages are our own (api/docs.py): FastAPI's load their scripts from a CDN
    app = FastAPI(title="Assistd", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.api_keys = settings.keys()
    app.state.storage = storage(settings)
    if enqueue is None:
        from core.enqueue import sender  # the broker is made on import, from the settings

        enqueue = sender(settings.redis_url)
    app.state.enqueue = enqueue
    errors.install(app)
    # outermost last: Observe names, counts and logs every answer, CatchAll catches every error,
    # the Gate runs before a body is read
    app.add_middleware(limits.Gate, settings=settings, keys=app.state.api_keys, limiter=limiter)
    app.add_middleware(errors.CatchAll)
    app.add_middleware(observe.Observe, access_log=settings.access_log)
    app.add_route("/metrics", metrics.exposition, include_in_schema=False)

    # the probes first: they are matched before the API's routes
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        """Ready when the database (and Redis, in distributed mode) answer."""
        async with app.state.sessions() as session:
            await session.exec(text("SELECT 1"))
        await event_log().ping()
        return {"status": "ready"}

    # Routes are matched in order: the busiest first (a response's create, a run's polls). And
    # /threads/runs is declared before /threads/{thread_id} so it is not taken for a thread id.
    routers = (
        responses,
        runs,
        steps,
        messages,
        threads,
        assistants,
        files,
        uploads,
        vector_stores,
        conversations,
        containers,
        models,
        project_runs,
    )
    for module in routers:
        flat.include(app, module.router, prefix="/v1")
    docs.mount(app)
    if settings.playground:
        playground.mount(app)

    return app
