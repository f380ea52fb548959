"""Real `assistd serve` and `assistd worker` processes: a clean stop (SIGTERM) removes the
containers they own, and a cap on sessions reaches the model as the tool's output."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import redis
from openai import OpenAI

from tests.conftest import ScriptedModel, Server, start_distributed, start_embedded, stop, unavailable
from tests.procs import REDIS_URL
from tests.sandbox.conftest import IMAGE


@pytest.fixture
def namespace() -> Iterator[str]:
    try:
        with contextlib.closing(docker.from_env()) as client:
            client.images.get(IMAGE)
    except docker.errors.DockerException:
        unavailable(f"a Docker engine with the image {IMAGE}")
    # not the "assistd-test-" prefix: other test sessions remove those containers when they end
    ns = f"test-stop-{secrets.token_hex(4)}"
    yield ns
    with contextlib.closing(docker.from_env()) as client:
        for cid in containers(ns):
            client.api.remove_container(cid, force=True)
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(f"{ns}:*"):
        r.delete(key)
    r.close()


def containers(namespace: str) -> set[str]:
    with contextlib.closing(docker.from_env()) as client:
        mine = {"label": f"assistd.namespace={namespace}"}
        return {c.id for c in client.containers.list(all=True, filters=mine)}


def wait_for(n: int, namespace: str) -> set[str]:
    for _ in range(300):
        found = containers(namespace)
        if len(found) >= n:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{n} containers did not start: {found}")


def code_run(client: OpenAI, model_server: ScriptedModel, src: str) -> Any:
    call = {"id": "call_1", "name": "code_interpreter", "arguments": json.dumps({"code": src})}
    model = model_server.script(str(uuid.uuid4()), [{"tool_calls": [call]}, {"content": "Done."}])
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Run it."}])
    return client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)


def logs_of(client: OpenAI, run: Any) -> str:
    steps = client.beta.threads.runs.steps.list(thread_id=run.thread_id, run_id=run.id)
    calls = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]
    return "".join(o.logs for c in calls for o in c.code_interpreter.outputs if o.type == "logs")


def env(namespace: str, **more: str) -> dict[str, str]:
    return {
        "ASSISTD_SANDBOX_IMAGE": IMAGE,
        "ASSISTD_SANDBOX_POOL_SIZE": "2",
        "ASSISTD_REDIS_NAMESPACE": namespace,
        **more,
    }


def terminate(server: Server, index: int) -> None:
    server.procs[index].send_signal(signal.SIGTERM)
    assert server.procs[index].wait(timeout=60) == 0


def test_serve_removes_its_pool_and_sessions_on_sigterm(
    model_server: ScriptedModel, tmp_path: Path, namespace: str
) -> None:
    server = start_embedded(model_server, tmp_path, extra=env(namespace))
    try:
        wait_for(2, namespace)
        run = code_run(server.client(), model_server, "x = 1\nprint('ran')")
        assert run.status == "completed", run.last_error
        assert len(wait_for(3, namespace)) == 3  # the session, and the pool filled again
        terminate(server, 0)
        assert containers(namespace) == set()  # nobody else could ever find these sessions
    finally:
        stop(server.procs)


def test_worker_removes_its_pool_and_keeps_shared_sessions_on_sigterm(
    model_server: ScriptedModel, tmp_path: Path, namespace: str
) -> None:
    server = start_distributed(model_server, tmp_path, workers=1, extra=env(namespace))
    try:
        wait_for(2, namespace)
        run = code_run(server.client(), model_server, "x = 1\nprint('ran')")
        assert run.status == "completed", run.last_error
        r = redis.Redis.from_url(REDIS_URL)
        (key,) = list(r.scan_iter(f"{namespace}:sandbox:session:*"))
        session = json.loads(r.get(key))  # type: ignore[arg-type]
        r.close()
        terminate(server, 1)
        # the registered session stays for the next worker (its reapers remove it once idle)
        assert containers(namespace) == {session["container"]}
    finally:
        stop(server.procs)


def test_a_session_cap_is_told_to_the_model(
    model_server: ScriptedModel, tmp_path: Path, namespace: str
) -> None:
    server = start_embedded(
        model_server,
        tmp_path,
        extra=env(namespace, ASSISTD_SANDBOX_POOL_SIZE="0", ASSISTD_SANDBOX_MAX_PROJECT_SESSIONS="1"),
    )
    try:
        client = server.client()
        first = code_run(client, model_server, "print('first')")
        assert first.status == "completed" and logs_of(client, first) == "first\n"
        second = code_run(client, model_server, "print('second')")  # another thread: a second session
        assert second.status == "completed", second.last_error  # the run goes on
        told = logs_of(client, second)
        assert "The code was not run" in told and "this project has its maximum of 1" in told, told
        sent = model_server.requests()[-1]["body"]["messages"][-1]
        assert sent["role"] == "tool" and "this project has its maximum of 1" in sent["content"]
    finally:
        stop(server.procs)
