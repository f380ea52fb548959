"""The API's enqueue from its event loop (core/enqueue.py), against a real Redis: what it sends is
what dramatiq's own consumer fetches, a turn's ids go in one pipeline, a flushed script is loaded
again, and an unreachable Redis drops the ids with a warning (the sweeper re-sends them)."""

from __future__ import annotations

import asyncio
import logging

import dramatiq
import pytest

from core.broker import EXECUTE_RESPONSE, EXECUTE_RUN, RUNS_QUEUE
from core.doorbell import DoorbellRedisBroker, doorbell_key
from core.enqueue import LoopSender
from tests.conftest import REDIS_URL


@pytest.fixture
def broker(redis_broker: DoorbellRedisBroker) -> DoorbellRedisBroker:
    return redis_broker


def fetched(broker: DoorbellRedisBroker) -> list[tuple[str, tuple[object, ...]]]:
    """What dramatiq's consumer gets from the queue, in order (then acked)."""
    consumer = broker.consume(RUNS_QUEUE, prefetch=100, timeout=100)
    out = []
    while (proxy := next(consumer)) is not None:
        out.append((proxy.actor_name, tuple(proxy.args)))
        consumer.ack(proxy)
    consumer.close()
    return out


def send(sender: LoopSender, *ids: str, turns: int = 1) -> None:
    """Hand `ids` over in `turns` turns of one event loop, then close the sender."""

    async def go() -> None:
        per_turn = -(-len(ids) // turns)
        for start in range(0, len(ids), per_turn):
            for run_id in ids[start : start + per_turn]:
                sender(run_id)
            await asyncio.sleep(0.05)
        await sender.aclose()

    asyncio.run(go())


def test_what_it_sends_is_what_dramatiq_fetches_in_order(broker: DoorbellRedisBroker) -> None:
    send(LoopSender(broker, REDIS_URL), "run_a", "resp_b", "run_c", turns=2)
    assert fetched(broker) == [
        (EXECUTE_RUN, ("run_a",)),
        (EXECUTE_RESPONSE, ("resp_b",)),
        (EXECUTE_RUN, ("run_c",)),
    ]


def test_one_turn_is_one_pipeline_and_rings_once_per_id(
    broker: DoorbellRedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = LoopSender(broker, REDIS_URL)
    sent: list[int] = []
    real = sender._send

    async def counted(ids: list[str]) -> None:
        sent.append(len(ids))
        await real(ids)

    monkeypatch.setattr(sender, "_send", counted)
    send(sender, *(f"run_{i}" for i in range(50)))
    assert sent == [50]
    assert broker.client.llen(doorbell_key(broker.namespace, RUNS_QUEUE)) == 50
    assert [args[0] for _, args in fetched(broker)] == [f"run_{i}" for i in range(50)]


def test_a_flushed_script_is_loaded_again(broker: DoorbellRedisBroker) -> None:
    send(LoopSender(broker, REDIS_URL), "run_before")
    broker.client.script_flush()
    send(LoopSender(broker, REDIS_URL), "run_after")
    assert [args[0] for _, args in fetched(broker)] == ["run_before", "run_after"]


def test_an_unreachable_redis_drops_the_ids_with_a_warning(
    broker: DoorbellRedisBroker, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="assistd.broker"):
        send(LoopSender(broker, "redis://127.0.0.1:1/0"), "run_lost")  # nothing listens on port 1
    assert "could not enqueue run_lost; the sweeper will re-send them" in caplog.text
    assert fetched(broker) == []


def test_messages_decode_as_dramatiq_messages(broker: DoorbellRedisBroker) -> None:
    send(LoopSender(broker, REDIS_URL), "run_x")
    (encoded,) = broker.client.hvals(f"{broker.namespace}:{RUNS_QUEUE}.msgs")
    message = dramatiq.Message.decode(encoded)
    assert (message.queue_name, message.actor_name, tuple(message.args)) == (
        RUNS_QUEUE,
        EXECUTE_RUN,
        ("run_x",),
    )
    queued = broker.client.lrange(f"{broker.namespace}:{RUNS_QUEUE}", 0, -1)
    assert queued == [message.options["redis_message_id"].encode()]
