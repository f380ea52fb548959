"""`assistd serve --workers N`: embedded mode with several API processes on one port, the worker
in the parent; its queue, event log and rate-limit counters reached through the hub
(core/hub.py), metrics that add up, children replaced, one stop, no child outliving the parent."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.assistd.test_api_workers import children_left
from tests.contract.test_responses import background_stream
from tests.procs import KEY_A, KEY_B, ScriptedModel, Server, children, start_embedded, stop

LIMIT = 12  # proj_b's requests per window, counted across the API processes
HEADERS_A = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture(scope="module")
def served(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve-workers")
    (tmp / "metrics").mkdir()
    extra = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "ASSISTD_RATE_LIMITS": json.dumps({"proj_b": {"rpm": LIMIT}}),
        "ASSISTD_RATE_LIMIT_WINDOW_SECONDS": "600",
    }
    server = start_embedded(model_server, tmp, extra=extra, api_workers=2)
    api_processes(server, other_than=set())
    yield server
    stop(server.procs)


def api_processes(server: Server, other_than: set[int]) -> set[int]:
    """The two API processes of `server`, once both run and neither is one of `other_than`."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = children(server.procs[0].pid)
        if len(kids) == 2 and not kids & other_than:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"API processes: {children(server.procs[0].pid)}, not 2 new ones")


def test_two_api_processes_and_the_parents_worker_run_every_flow(served: Server) -> None:
    kids = api_processes(served, other_than=set())
    assistant = served.client().beta.assistants.create(model="echo", name="w")

    def flow(n: int) -> str:
        # a client (a connection) per flow: the kernel spreads connections over the processes
        with OpenAI(base_url=f"{served.url}/v1", api_key=KEY_A, max_retries=0) as client:
            thread = client.beta.threads.create(messages=[{"role": "user", "content": f"flow {n}"}])
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
            )
            assert run.status == "completed", run.last_error
            reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
            assert reply.content[0].type == "text"
            return reply.content[0].text.value

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(flow, range(24))) == [f"You said: flow {n}" for n in range(24)]

    def get(_: int) -> int:
        # a new connection each time: one busy process may accept all of a few connections
        return httpx.get(f"{served.url}/v1/models", headers=HEADERS_A, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(get, range(200))) == {200}
    # both processes served requests: each wrote its own metrics file
    shared = served.env["PROMETHEUS_MULTIPROC_DIR"]
    writers = {int(f.rsplit("_", 1)[1].split(".")[0]) for f in os.listdir(shared) if f.startswith("counter_")}
    assert kids <= writers


def test_streams_and_background_responses_follow_the_parents_event_log(served: Server) -> None:
    client = served.client()
    with client.beta.threads.runs.stream(
        thread_id=client.beta.threads.create(messages=[{"role": "user", "content": "stream me"}]).id,
        assistant_id=client.beta.assistants.create(model="words:4", name="s").id,
    ) as stream:
        kinds = [event.event for event in stream]
        final = stream.get_final_run()
    assert kinds[0] == "thread.run.created" and kinds[-1] == "thread.run.completed"
    assert kinds.count("thread.message.delta") == 4 and final.status == "completed"

    with client.responses.stream(model="words:5", input="count") as rstream:
        deltas = [e for e in rstream if e.type == "response.output_text.delta"]
        response = rstream.get_final_response()
    assert len(deltas) == 5 and response.output_text == "w1 w2 w3 w4 w5"

    plain = client.responses.create(model="echo", input="plain")  # waits on the event log's end
    assert plain.status == "completed" and plain.output_text == "You said: plain"

    background = background_stream(client, model="slow:300", input="later")
    # replayed from its first event and followed live, through whichever process takes it
    events = list(client.responses.retrieve(background.id, stream=True, starting_after=0))
    assert events[0].sequence_number == 1 and events[-1].type == "response.completed"
    assert client.responses.retrieve(background.id).output_text == "You said: later"


def test_rate_limits_count_across_the_processes(served: Server) -> None:
    headers = {"Authorization": f"Bearer {KEY_B}"}

    def get(_: int) -> int:
        # a new connection each time, so both processes count
        return httpx.get(f"{served.url}/v1/models", headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(get, range(3 * LIMIT)))
    assert codes.count(200) == LIMIT and codes.count(429) == 2 * LIMIT, codes


def test_metrics_add_up_over_the_processes_and_the_worker(served: Server) -> None:
    before = _requests_to(served, "/v1/assistants")
    headers = {"Authorization": f"Bearer {KEY_A}"}
    with ThreadPoolExecutor(4) as pool:
        codes = list(
            pool.map(
                lambda _: httpx.get(f"{served.url}/v1/assistants", headers=headers).status_code, range(40)
            )
        )
    assert set(codes) == {200}
    assert _requests_to(served, "/v1/assistants") == before + 40
    text = httpx.get(f"{served.url}/metrics").text
    assert any(line.startswith("assistd_runs_started_total{") for line in text.splitlines())  # the worker's


def _requests_to(server: Server, route: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("assistd_http_requests_total{") and f'route="{route}"' in line
    ]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_a_dead_api_process_is_replaced_and_one_sigterm_stops_all(
    model_server: ScriptedModel, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"  # where the hub's socket and the metrics files go
    temp.mkdir()
    server = start_embedded(model_server, tmp_path, extra={"TMPDIR": str(temp)}, api_workers=2)
    try:
        parent = server.procs[0]
        kids = api_processes(server, other_than=set())
        assert sorted(p.name.split("-")[1] for p in temp.iterdir()) == ["hub", "metrics"]
        killed = next(iter(kids))
        os.kill(killed, signal.SIGKILL)
        now = api_processes(server, other_than={killed})
        assert len(now & kids) == 1  # the other one served on
        client = server.client()
        _wait_served(server)
        assert client.responses.create(model="echo", input="again").output_text == "You said: again"
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0
        assert not children_left(now), "an API process outlived its parent"
        assert not list(temp.iterdir())  # the hub's socket and the metrics files removed
    finally:
        stop(server.procs)


def test_api_processes_stop_when_the_parent_is_killed(model_server: ScriptedModel, tmp_path: Path) -> None:
    server = start_embedded(model_server, tmp_path, api_workers=2)
    try:
        parent = server.procs[0]
        kids = api_processes(server, other_than=set())
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while children_left(kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not children_left(kids), "API processes kept serving without their parent's queue"
    finally:
        stop(server.procs)


def _wait_served(server: Server) -> None:
    """Until both processes answer (a new one may still be starting)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if all(httpx.get(f"{server.url}/readyz").status_code == 200 for _ in range(6)):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
