"""Thin actors: each body is one call into the ingestion pipeline. (The runs queue is consumed on
the runner's event loop, not by an actor: workers/consumer.py.)"""

from __future__ import annotations

import dramatiq

from core.broker import INGEST_QUEUE, broker
from core.config import get_settings
from core.ingest_queue import INGEST_FILES
from workers.ingest.pipeline import ingestor
from workers.middleware import IngestMiddleware, QueueMetrics, RunnerMiddleware

broker.add_middleware(RunnerMiddleware())
broker.add_middleware(QueueMetrics())
broker.add_middleware(IngestMiddleware())


@dramatiq.actor(
    queue_name=INGEST_QUEUE, actor_name=INGEST_FILES, max_retries=5, min_backoff=200, max_backoff=5000
)
def ingest_files(vector_store_id: str, file_ids: list[str]) -> None:
    """Start ingesting files of a vector store (on ingestion's own loop). Safe to receive twice."""
    ingestor(get_settings()).start(vector_store_id, *file_ids)
