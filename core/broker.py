"""The one broker module, imported before any actor.

Redis when `REDIS_URL` is set (distributed mode), dramatiq's in-memory StubBroker otherwise
(embedded mode: API and worker share one process). The API enqueues by actor name, so it
never imports worker code.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.asyncio import AsyncIO

from core.config import get_settings

RUNS_QUEUE = "runs"
EXECUTE_RUN = "execute_run"


def _make_broker() -> dramatiq.Broker:
    settings = get_settings()
    broker: dramatiq.Broker
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=settings.redis_url, namespace=settings.redis_namespace)
    else:
        broker = StubBroker()
    broker.add_middleware(AsyncIO())
    broker.declare_queue(RUNS_QUEUE)
    return broker


broker = _make_broker()
dramatiq.set_broker(broker)


def enqueue_run(run_id: str) -> None:
    """Hand a run id to the workers; running it twice is safe (the claim is atomic)."""
    broker.enqueue(
        dramatiq.Message(
            queue_name=RUNS_QUEUE, actor_name=EXECUTE_RUN, args=(run_id,), kwargs={}, options={}
        )
    )
