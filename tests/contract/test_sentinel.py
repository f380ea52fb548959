"""A representative share of the contract tests against API + 2 workers on Redis Sentinel
(ASSISTD_REDIS_URL=redis+sentinel://...): a primary, its replica and three sentinels started for
this module (tests/sentinel.py). The broker, the doorbell, the event log (streams, long polls) and
the rate-limit counters all reach the primary through the sentinels; tests/test_failover.py moves
the primary while runs are in flight.

As in test_pgbouncer.py, the tests are the other modules' own, collected here a second time under
this module's `server`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import ScriptedModel, Server, ServiceMissing, start_distributed, stop, unavailable
from tests.contract.test_code_interpreter import IMAGE
from tests.contract.test_quickstart import test_quickstart  # noqa: F401
from tests.contract.test_response_tools import (
    test_state_is_kept_across_responses_that_share_a_container as state_kept_across_responses,
)
from tests.contract.test_responses import (  # noqa: F401
    test_background_response_polled_and_replayed,
    test_plain_response,
    test_streamed_response_with_the_sdk_helper,
)
from tests.contract.test_runs import (  # noqa: F401
    test_a_poll_helpers_retrieve_is_answered_when_the_run_ends,
    test_many_runs_each_one_message,
)
from tests.contract.test_streaming import test_create_and_run_stream, test_tool_calls_and_submit_stream  # noqa: F401
from tests.sentinel import SentinelGroup


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    try:
        group = SentinelGroup(tmp_path_factory.mktemp("sentinel")).start()
    except ServiceMissing as exc:
        unavailable(str(exc))
        raise
    yield group
    group.stop()


@pytest.fixture(scope="module")
def server(
    model_server: ScriptedModel, sentinels: SentinelGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("sentinel-server")
    server = start_distributed(model_server, tmp, redis_url=sentinels.url)
    yield server
    stop(server.procs)


def test_the_queue_is_on_the_primary(server: Server, client: OpenAI, sentinels: SentinelGroup) -> None:
    """The workers' queue and the run's events are on the primary the sentinels name (and were
    copied to its replica), not on the machine's own Redis."""
    import redis

    assistant = client.beta.assistants.create(model="echo")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "where"}]}
    )
    assert run.status == "completed"
    namespace = server.env["ASSISTD_REDIS_NAMESPACE"]
    for port in sentinels.ports:  # the primary, and the replica that copies it
        with redis.Redis(host="127.0.0.1", port=port) as r:
            assert r.exists(f"{namespace}:events:{run.id}"), port


def test_a_containers_session_is_found_through_the_sentinels(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    """The sandbox registry is on the primary too: a container's state is kept across responses,
    whichever of the two workers runs each."""
    inspect = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30)
    if inspect.returncode != 0:
        unavailable(f"a Docker engine with the image {IMAGE}")
    state_kept_across_responses(client, model_server)
