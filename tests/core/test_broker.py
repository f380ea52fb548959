"""What the API and the sweepers put on the queues: run ids on `runs`, files of one store on `ingest`."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from core.broker import EXECUTE_RUN, INGEST_QUEUE, RUNS_QUEUE, backlog, enqueue_run
from core.ingest_queue import FILES_PER_MESSAGE, INGEST_FILES, by_store, enqueue_ingest_files


def waiting(broker: StubBroker, queue: str) -> list[tuple[str, tuple[Any, ...]]]:
    """(actor name, args) of the messages in `queue`, oldest first, left where they are."""
    return [(m.actor_name, tuple(m.args)) for m in map(dramatiq.Message.decode, broker.queues[queue].queue)]


def test_a_run_id_goes_to_the_runs_queue_and_counts_in_the_backlog(stub_broker: StubBroker) -> None:
    assert backlog() == 0
    enqueue_run("run_a")
    enqueue_run("run_b")
    assert waiting(stub_broker, RUNS_QUEUE) == [(EXECUTE_RUN, ("run_a",)), (EXECUTE_RUN, ("run_b",))]
    assert backlog() == 2
    assert waiting(stub_broker, INGEST_QUEUE) == []


@pytest.mark.parametrize(
    ("files", "per_message", "sizes"),
    [
        (FILES_PER_MESSAGE * 2 + 2, None, [FILES_PER_MESSAGE, FILES_PER_MESSAGE, 2]),
        (FILES_PER_MESSAGE, None, [FILES_PER_MESSAGE]),
        (3, 1, [1, 1, 1]),  # the local model's files: one to a message
        (5, 2, [2, 2, 1]),
        (0, None, []),
    ],
)
def test_files_of_a_store_go_out_in_order_at_most_per_message_to_a_message(
    stub_broker: StubBroker, files: int, per_message: int | None, sizes: list[int]
) -> None:
    file_ids = [f"file-{i}" for i in range(files)]
    enqueue_ingest_files("vs_1", file_ids, per_message=per_message)
    sent = waiting(stub_broker, INGEST_QUEUE)
    assert {name for name, _ in sent} <= {INGEST_FILES} and {args[0] for _, args in sent} <= {"vs_1"}
    assert [len(args[1]) for _, args in sent] == sizes
    assert [f for _, args in sent for f in args[1]] == file_ids
    assert backlog() == 0  # the backlog counts runs only


def test_pending_files_are_grouped_by_store_in_order() -> None:
    pending = [("vs_a", "f1"), ("vs_b", "f2"), ("vs_a", "f3"), ("vs_b", "f4"), ("vs_c", "f5")]
    assert by_store(pending) == {"vs_a": ["f1", "f3"], "vs_b": ["f2", "f4"], "vs_c": ["f5"]}
    assert list(by_store(pending)) == ["vs_a", "vs_b", "vs_c"]
