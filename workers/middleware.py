"""The worker's dramatiq middleware: what lives and dies with the worker process.

- RunnerMiddleware: the Runner (runs in flight) is created at boot and hands its runs back at shutdown;
  it also starts the runs queue's consumer on the Runner's loop (workers/consumer.py);
- IngestMiddleware: ingestion stops at shutdown (unfinished files' leases lapse);
- QueueMetrics: ingestion's messages by outcome, and time per message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker

from core.broker import BackgroundSender, LocalBroker, backlog
from core.config import get_settings
from workers.consumer import Consumer, LocalConsumer, RunsConsumer
from workers.ingest.pipeline import stop_ingestor
from workers.metrics import MESSAGE_SECONDS, MESSAGES
from workers.runner import Runner

log = logging.getLogger("assistd.worker")
_runner: Runner | None = None
_consumer: Consumer | None = None  # the runs queue, on the runner's loop


def runner() -> Runner:
    if _runner is None:
        raise RuntimeError("the worker has not booted")
    return _runner


def _loop_thread() -> EventLoopThread:
    """dramatiq's event loop thread, which its AsyncIO middleware (added first) has started."""
    thread = get_event_loop_thread()
    if thread is None:
        raise RuntimeError("dramatiq's AsyncIO middleware is not running")
    return thread


class RunnerMiddleware(dramatiq.Middleware):
    """Creates the Runner on the worker's event loop at boot and hands back its runs at shutdown.

    Added after dramatiq's AsyncIO middleware, whose "after" hooks run later (in reverse order):
    so at shutdown this runs once the consumers have stopped (nothing new is claimed) and
    before the event loop stops.
    """

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        async def boot() -> None:
            global _runner, _consumer
            settings = get_settings()
            _runner = Runner(settings, BackgroundSender(), backlog)
            if isinstance(broker, RedisBroker) and settings.redis_url:
                _consumer = RunsConsumer(
                    broker, settings.redis_url, _runner.start, _runner.room, settings.worker_poll_ms
                )
            elif isinstance(broker, LocalBroker):
                _consumer = LocalConsumer(broker, _runner.start, _runner.room)
            if _consumer is not None:
                _consumer.begin()

        _loop_thread().run_coroutine(boot())

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """The runs queue's consumer stops with dramatiq's consumers: nothing new is claimed."""
        global _consumer
        if _consumer is not None:
            try:
                _loop_thread().run_coroutine(_consumer.stop())
            except Exception:
                log.warning("the runs queue's consumer did not stop cleanly", exc_info=True)
            _consumer = None

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        global _runner
        if _runner is None:
            return
        try:
            _loop_thread().run_coroutine(_runner.close())
        except Exception:
            log.warning("runner did not close cleanly", exc_info=True)
        _runner = None


class IngestMiddleware(dramatiq.Middleware):
    """Stops this process's ingestion at worker shutdown, before the event loop stops: the
    leases of unfinished files lapse and the sweeper sends them to another worker."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        try:
            stop_ingestor()
        except Exception:
            log.warning("ingestion did not stop cleanly", exc_info=True)


class QueueMetrics(dramatiq.Middleware):
    """dramatiq's own queue metrics (ingestion's queue): messages by outcome, time per message.
    The runs queue's consumer counts its own, and keeps the backlog gauge (workers/consumer.py)."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self._started.pop(message.message_id, None)
        if started is not None:
            MESSAGE_SECONDS.labels(message.queue_name, message.actor_name).observe(
                time.perf_counter() - started
            )
        outcome = "ok" if exception is None else "retry" if isinstance(exception, dramatiq.Retry) else "error"
        MESSAGES.labels(message.queue_name, message.actor_name, outcome).inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._started.pop(message.message_id, None)
        MESSAGES.labels(message.queue_name, message.actor_name, "skipped").inc()
