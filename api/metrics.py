"""Prometheus metrics of the API: requests by route template, in-flight requests, queue depth
(api/observe.py counts and times the requests).

With several API processes on one host, set PROMETHEUS_MULTIPROC_DIR (prometheus_client's own
variable) to a directory shared by them; `/metrics` then sums every process.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
)
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import Unauthorized
from core.metrics import allowed, render
from core.models import Run

log = logging.getLogger("assistd.api")

REQUESTS = Counter("assistd_http_requests_total", "HTTP requests served", ["method", "route", "status"])
LATENCY = Histogram(
    "assistd_http_request_duration_seconds",
    "Time to the response's first byte",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
IN_FLIGHT = Gauge(
    "assistd_http_requests_in_flight", "HTTP requests being served", multiprocess_mode="livesum"
)
RUNS_BY_STATUS = Gauge(
    "assistd_runs",
    "Runs not yet finished, by status (queue depth for autoscaling: status=queued)",
    ["status"],
    multiprocess_mode="max",
)


async def refresh_queue_depth(sessions: async_sessionmaker[AsyncSession], every: float = 5.0) -> None:
    """Keep `assistd_runs{status}` current: the queue depth an autoscaler scales workers on."""
    while True:
        try:
            async with sessions() as session:
                rows = await session.exec(
                    select(col(Run.status), func.count())
                    .where(col(Run.status).in_(("queued", "in_progress", "requires_action", "cancelling")))
                    .group_by(col(Run.status))
                )
                counts = dict(rows.all())
            for status in ("queued", "in_progress", "requires_action", "cancelling"):
                RUNS_BY_STATUS.labels(status).set(counts.get(status, 0))
        except Exception:
            log.warning("could not count runs for metrics", exc_info=True)
        await asyncio.sleep(every)


async def exposition(request: Request) -> Response:
    """GET /metrics (with ASSISTD_METRICS_TOKEN set, for its Bearer token only)."""
    settings = request.app.state.settings
    if not allowed(request.headers.get("authorization"), settings.metrics_token):
        error = Unauthorized("A valid metrics token is required (Authorization: Bearer <the token>).")
        return JSONResponse(error.body(), status_code=error.status)
    return Response(render(settings.prometheus_multiproc_dir), media_type=CONTENT_TYPE_LATEST)
