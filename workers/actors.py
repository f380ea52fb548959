"""Thin actors: each body is one call into the Runner (workers/runner.py) or the ingestion pipeline.

`assistd worker` and `serve` consume the runs queue on the runner's event loop instead
(workers/consumer.py); the run actors serve a worker started with dramatiq's own CLI without
`--queues ingest`, whose threads then take a share of the runs as well (a run is claimed once,
whoever takes its message)."""

from __future__ import annotations

import dramatiq

from core.broker import EXECUTE_RESPONSE, EXECUTE_RUN, INGEST_QUEUE, RUNS_QUEUE, broker
from core.config import get_settings
from core.ingest_queue import INGEST_FILES
from workers.ingest.pipeline import ingestor
from workers.middleware import IngestMiddleware, QueueMetrics, RunnerMiddleware, runner

broker.add_middleware(RunnerMiddleware())
broker.add_middleware(QueueMetrics())
broker.add_middleware(IngestMiddleware())


@dramatiq.actor(
    queue_name=RUNS_QUEUE, actor_name=EXECUTE_RUN, max_retries=5, min_backoff=200, max_backoff=5000
)
async def execute_run(run_id: str) -> None:
    """Claim run `run_id` and start it on this process's event loop. Safe to receive twice."""
    await runner().start(run_id)


@dramatiq.actor(
    queue_name=RUNS_QUEUE, actor_name=EXECUTE_RESPONSE, max_retries=5, min_backoff=200, max_backoff=5000
)
async def execute_response(response_id: str) -> None:
    """Claim response `response_id` and start it, as a run. Safe to receive twice."""
    await runner().start(response_id)


@dramatiq.actor(
    queue_name=INGEST_QUEUE, actor_name=INGEST_FILES, max_retries=5, min_backoff=200, max_backoff=5000
)
def ingest_files(vector_store_id: str, file_ids: list[str]) -> None:
    """Start ingesting files of a vector store (on ingestion's own loop). Safe to receive twice."""
    ingestor(get_settings()).start(vector_store_id, *file_ids)
