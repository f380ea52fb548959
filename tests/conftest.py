"""Fixtures: real processes for tests (see tests/procs.py).

Services are required in CI (CI=true): a missing one fails the test. Elsewhere it is skipped.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from dramatiq.brokers.stub import StubBroker
from openai import OpenAI

from tests import procs
from tests.procs import (  # noqa: F401  (re-exported for tests)
    KEY_A,
    KEY_B,
    REDIS_URL,
    ROOT,
    SERVERS,
    ScriptedModel,
    Server,
    ServiceMissing,
    spawn,
    stop,
)

if TYPE_CHECKING:
    from core.doorbell import DoorbellRedisBroker

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str) -> None:
    if CI:
        pytest.fail(f"{what} is not reachable; .ci/run must start it")
    pytest.skip(f"{what} is not reachable")


def fresh_pg_database() -> str:
    try:
        return procs.fresh_pg_database()
    except ServiceMissing as exc:
        unavailable(str(exc))
        raise


def start_embedded(*args: Any, **kw: Any) -> Server:
    return procs.start_embedded(*args, **kw)


def start_distributed(*args: Any, **kw: Any) -> Server:
    try:
        return procs.start_distributed(*args, **kw)
    except ServiceMissing as exc:
        unavailable(str(exc))
        raise


@pytest.fixture
def redis_broker() -> Iterator[DoorbellRedisBroker]:
    """dramatiq's Redis broker (with the doorbell) on a namespace of its own, removed after."""
    import redis

    # imported here, not at the top: core.broker reads the settings when first imported
    from core.broker import RUNS_QUEUE
    from core.doorbell import DoorbellRedisBroker

    if not procs.redis_available():
        unavailable("Redis")
    namespace = "assistd-test-" + secrets.token_hex(4)
    made = DoorbellRedisBroker(client=redis.Redis.from_url(REDIS_URL), namespace=namespace)
    made.declare_queue(RUNS_QUEUE)
    yield made
    keys = list(made.client.scan_iter(f"{namespace}:*"))
    if keys:
        made.client.delete(*keys)
    made.client.close()


@pytest.fixture(scope="session", autouse=True)
def _remove_test_sandboxes() -> Iterator[None]:
    yield
    procs.remove_test_sandboxes()


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedModel]:
    model, proc = procs.start_model(tmp_path_factory.mktemp("model"))
    yield model
    stop([proc])


@pytest.fixture(scope="session")
def embedded(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_embedded(model_server, tmp_path_factory.mktemp("embedded"))
    yield server
    stop(server.procs)


@pytest.fixture(scope="session")
def distributed(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """API + 2 workers on Redis and PostgreSQL, file bytes in S3 (moto's server)."""
    tmp = tmp_path_factory.mktemp("distributed")
    s3_env, s3 = procs.start_s3(tmp)
    try:
        server = start_distributed(model_server, tmp, extra=s3_env)
    except BaseException:
        stop([s3])
        raise
    yield server
    stop(server.procs + [s3])


@pytest.fixture(scope="session")
def embedded_workers(
    model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`assistd serve --workers 2`: two API processes, the worker in the parent (core/hub.py)."""
    server = start_embedded(model_server, tmp_path_factory.mktemp("embedded-workers"), api_workers=2)
    yield server
    stop(server.procs)


@pytest.fixture(scope="session", params=["embedded", "distributed"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture(scope="session", params=["embedded", "distributed", "embedded_workers"])
def server_all(request: pytest.FixtureRequest) -> Server:
    """Both modes and `serve --workers 2`."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def in_every_mode() -> Any:
    """`server = in_every_mode()` in a module whose paths cross `serve --workers N`'s hub: its
    tests' `server` is then each of both modes and `serve --workers 2`."""

    @pytest.fixture(scope="session", name="server")
    def every_mode(server_all: Server) -> Server:
        return server_all

    return every_mode


@pytest.fixture
def client(server: Server) -> OpenAI:
    return server.client()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    for server in SERVERS:
        server.close_clients()


@pytest.fixture
def assistant(client: OpenAI) -> Any:
    return client.beta.assistants.create(model="echo", name="Test", instructions="You are a test assistant.")


@pytest.fixture
def stub_broker() -> Iterator[StubBroker]:
    """The process's broker (core.broker): dramatiq's StubBroker, since REDIS_URL is not set in
    tests. Its queues start and end each test empty."""
    from core.broker import broker

    if not isinstance(broker, StubBroker):
        pytest.skip("core.broker is a Redis broker in this process (REDIS_URL is set)")
    broker.flush_all()
    yield broker
    broker.flush_all()
