"""Start a dramatiq worker in this process (`assistd worker`, or inside `assistd serve`)."""

from __future__ import annotations

import asyncio
import sys

import dramatiq
import uvloop

from core.config import Settings


def start_worker(settings: Settings) -> dramatiq.Worker:
    """A started worker consuming the runs queue; call `.stop()` to hand its runs back."""
    import workers.actors  # noqa: F401  (declares the actors on the broker)
    from core.broker import broker

    # The run loop shares the GIL with dramatiq's threads; a short switch interval keeps its
    # socket I/O from queueing 5 ms behind them for the GIL after every system call.
    sys.setswitchinterval(0.0005)
    # dramatiq's event loop thread calls asyncio.new_event_loop(): make that a uvloop loop,
    # whose C transports halve the cost of each socket operation on the run path.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads, worker_timeout=settings.worker_poll_ms)
    worker.start()
    return worker
