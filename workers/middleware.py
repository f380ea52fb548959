"""The worker's dramatiq middleware: what lives and dies with the worker process.

- RunnerMiddleware: the Runner (runs in flight) is created at boot and hands its runs back at shutdown;
  in distributed mode it also starts the runs queue's consumer on the Runner's loop (workers/consumer.py);
- IngestMiddleware: ingestion stops at shutdown (unfinished files' leases lapse);
- QueueMetrics: messages by outcome, time per message, and the backlog.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker

from core.broker import BackgroundSender, backlog
from core.config import get_settings
from workers.consumer import RunsConsumer
from workers.ingest.pipeline import stop_ingestor
from workers.metrics import BACKLOG, MESSAGE_SECONDS, MESSAGES
from workers.runner import Runner

log = logging.getLogger("assistd.worker")
_runner: Runner | None = None
_consumer: RunsConsumer | None = None  # distributed mode: the runs queue, on the runner's loop


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
            if settings.redis_url and isinstance(broker, RedisBroker):
                _consumer = RunsConsumer(
                    broker, settings.redis_url, _runner.start, _runner.room, settings.worker_poll_ms
                )
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
    """dramatiq's own queue metrics: messages by outcome, time per message, and the backlog."""

    def __init__(self, backlog: Callable[[], int], queue: str) -> None:
        self.backlog, self.queue = backlog, queue
        self._started: dict[str, float] = {}
        self._measured = 0.0

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        now = time.perf_counter()
        self._started[message.message_id] = now
        if now - self._measured > 1.0:  # one look at the queue a second is plenty for a gauge
            self._measured = now
            try:
                BACKLOG.labels(self.queue).set(self.backlog())
            except Exception:  # the broker is unreachable: the message itself will say so
                pass

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
