"""Ingestion messages that carry many files of one store.

One message per file cost more than ingesting the file with an external embedding model
(the API's enqueue, Redis, the worker's consumer): a message carries up to `FILES_PER_MESSAGE`
files instead. The worker still claims each file under its own lease, so receiving a message
twice, or a file in two messages, is harmless. Declared here rather than in core/broker.py so
that the API and the workers' sweeper send the same thing.
"""

from __future__ import annotations

import dramatiq

from core.broker import INGEST_QUEUE, broker

INGEST_FILES = "ingest_files"
FILES_PER_MESSAGE = 64


def enqueue_ingest_files(vector_store_id: str, file_ids: list[str], per_message: int | None = None) -> None:
    """Hand files of one vector store to the workers, `per_message` (default `FILES_PER_MESSAGE`)
    to a message. A worker keeps the files of the messages it takes: few to a message spreads
    slow files (the local model's) evenly over the workers."""
    n = per_message or FILES_PER_MESSAGE
    for lo in range(0, len(file_ids), n):
        broker.enqueue(
            dramatiq.Message(
                queue_name=INGEST_QUEUE,
                actor_name=INGEST_FILES,
                args=(vector_store_id, file_ids[lo : lo + n]),
                kwargs={},
                options={},
            )
        )


def by_store(pending: list[tuple[str, str]]) -> dict[str, list[str]]:
    """(store id, file id) pairs grouped by store, in order."""
    out: dict[str, list[str]] = {}
    for store_id, file_id in pending:
        out.setdefault(store_id, []).append(file_id)
    return out
