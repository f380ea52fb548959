"""Start a dramatiq worker in this process (`assistd worker`, or inside `assistd serve`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import dramatiq
import uvloop
from sqlalchemy import text

from core.config import Settings
from core.db import sync_engine
from workers import metrics


def start_worker(settings: Settings, serve_metrics: bool = True) -> dramatiq.Worker:
    """A started worker consuming the runs queue; call `.stop()` to hand its runs back."""
    import workers.actors  # noqa: F401  (declares the actors on the broker)
    from core.broker import INGEST_QUEUE, broker

    # The run loop shares the GIL with dramatiq's threads; a short switch interval keeps its
    # socket I/O from queueing 5 ms behind them for the GIL after every system call.
    sys.setswitchinterval(0.0005)
    # dramatiq's event loop thread calls asyncio.new_event_loop(): make that a uvloop loop,
    # whose C transports halve the cost of each socket operation on the run path.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    # The runs queue is consumed on the runner's event loop (workers/consumer.py); dramatiq's
    # threads consume the rest (ingestion).
    worker = dramatiq.Worker(
        broker,
        queues={INGEST_QUEUE},
        worker_threads=settings.worker_threads,
        worker_timeout=settings.worker_poll_ms,
    )
    worker.start()
    if serve_metrics:  # `assistd serve` shows the worker's metrics on the API's /metrics instead
        metrics.serve(settings, readiness(settings, broker))
    return worker


def readiness(settings: Settings, broker: dramatiq.Broker) -> Callable[[], str | None]:
    """A check for /readyz: None when the database and the broker answer, else what failed."""
    engine = sync_engine(settings.database_url)

    def check() -> str | None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return "database unreachable"
        client = getattr(broker, "client", None)
        try:
            if client is not None:
                client.ping()
        except Exception:
            return "redis unreachable"
        return None

    return check
