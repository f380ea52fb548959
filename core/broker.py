"""The one broker module, imported before any actor.

Redis when `REDIS_URL` is set (distributed mode), dramatiq's in-memory StubBroker otherwise
(embedded mode: API and worker share one process, and the worker's consumer takes the runs
queue's messages as they are enqueued: LocalBroker; with `serve --workers N` the API processes
hand messages to the serving process's, core/hub.py). The API enqueues by actor name, so it
never imports worker code.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.asyncio import AsyncIO

from core.config import get_settings

RUNS_QUEUE = "runs"
EXECUTE_RUN = "execute_run"
EXECUTE_RESPONSE = "execute_response"  # on the runs queue too: a response is executed like a run
INGEST_QUEUE = "ingest"


class LocalBroker(StubBroker):
    """dramatiq's in-memory broker, whose messages for a queue can go to a listener instead: the
    worker's consumer on its event loop (workers/consumer.py), once it has started."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: dict[str, tuple[Callable[[dramatiq.Message[Any]], None], Callable[[], int]]] = {}

    def listen(
        self,
        queue_name: str,
        listener: Callable[[dramatiq.Message[Any]], None] | None,
        waiting: Callable[[], int] = lambda: 0,
    ) -> None:
        """Send `queue_name`'s messages to `listener` (called on the enqueuing thread), starting with
        those already queued; `waiting()` says how many it holds. None: back to the queue."""
        if listener is None:
            self._listeners.pop(queue_name, None)
            return
        self._listeners[queue_name] = (listener, waiting)
        queued = self.queues[queue_name]
        while not queued.empty():
            listener(dramatiq.Message.decode(queued.get_nowait()))
            queued.task_done()

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        listening = self._listeners.get(message.queue_name)
        if listening is None or delay is not None:
            return super().enqueue(message, delay=delay)
        listening[0](message)
        return message

    def waiting(self, queue_name: str) -> int:
        listening = self._listeners.get(queue_name)
        return int(self.queues[queue_name].qsize()) + (listening[1]() if listening else 0)


def _make_broker() -> dramatiq.Broker:
    settings = get_settings()
    broker: dramatiq.Broker
    if settings.redis_url:
        from core.doorbell import DoorbellRedisBroker
        from core.redis_client import sync_client

        broker = DoorbellRedisBroker(
            client=sync_client(settings.redis_url), namespace=settings.redis_namespace
        )
    elif settings.hub:  # an API process of `assistd serve --workers N`: the parent's queue
        from core.hub import HubBroker, client

        broker = HubBroker(client(settings.hub))
    else:
        broker = LocalBroker()
    broker.add_middleware(AsyncIO())
    broker.declare_queue(RUNS_QUEUE)
    broker.declare_queue(INGEST_QUEUE)
    return broker


broker = _make_broker()
dramatiq.set_broker(broker)


def enqueue_run(run_id: str) -> None:
    """Hand a run's (or a response's: `resp_...`) id to the workers; running it twice is safe
    (the claim is atomic)."""
    actor = EXECUTE_RESPONSE if run_id.startswith("resp_") else EXECUTE_RUN
    broker.enqueue(
        dramatiq.Message(queue_name=RUNS_QUEUE, actor_name=actor, args=(run_id,), kwargs={}, options={})
    )


def backlog() -> int:
    """Run ids waiting in the queue that no worker has fetched yet."""
    if isinstance(broker, LocalBroker):
        return broker.waiting(RUNS_QUEUE)
    if isinstance(broker, StubBroker):
        return int(broker.queues[RUNS_QUEUE].qsize())
    from dramatiq.brokers.redis import RedisBroker  # loaded already: the broker is one

    assert isinstance(broker, RedisBroker)
    return int(broker.client.llen(f"{broker.namespace}:{RUNS_QUEUE}"))


log = logging.getLogger("assistd.broker")


class BackgroundSender:
    """Enqueues run ids from a thread of its own, so the caller never waits on the broker: the
    workers' sweeper re-sends with it (the API sends from its event loop: core/enqueue.py).

    The run is already committed when its id is handed over: if the broker is unreachable
    the id is dropped with a warning and the sweeper re-sends it later.
    """

    def __init__(self) -> None:
        self._ids: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="assistd-enqueue", daemon=True)
        self._thread.start()

    def __call__(self, run_id: str) -> None:
        self._ids.put(run_id)

    def _loop(self) -> None:
        while True:
            run_id = self._ids.get()
            try:
                enqueue_run(run_id)
            except Exception:
                log.warning("could not enqueue %s; the sweeper will re-send it", run_id, exc_info=True)
