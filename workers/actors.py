"""Thin actors: each body is one call into the runner (workers/runs.py does the work)."""

from __future__ import annotations

import dramatiq

from core.broker import EXECUTE_RUN, RUNS_QUEUE, backlog, broker
from workers.metrics import QueueMetrics
from workers.middleware import RunnerMiddleware, runner

broker.add_middleware(RunnerMiddleware())
broker.add_middleware(QueueMetrics(backlog, RUNS_QUEUE))


@dramatiq.actor(queue_name=RUNS_QUEUE, actor_name=EXECUTE_RUN, max_retries=5, min_backoff=200, max_backoff=5000)
async def execute_run(run_id: str) -> None:
    """Claim run `run_id` and start it on this process's event loop. Safe to receive twice."""
    await runner().start(run_id)
