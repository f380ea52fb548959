"""Start a dramatiq worker in this process (`assistd worker`, or inside `assistd serve`)."""

from __future__ import annotations

import dramatiq

from core.config import Settings


def start_worker(settings: Settings) -> dramatiq.Worker:
    """A started worker consuming the runs queue; call `.stop()` to hand its runs back."""
    from core.broker import broker
    import workers.actors  # noqa: F401  (declares the actors on the broker)

    worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads, worker_timeout=settings.worker_poll_ms)
    worker.start()
    return worker
