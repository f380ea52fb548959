"""A dramatiq worker in the test process, as dramatiq's own tests run one: on the stub broker."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from core.config import Settings, get_settings
from core.db import migrate
from tests.procs import TEST_NAMESPACE, ScriptedModel


@pytest.fixture
def worker_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_server: ScriptedModel
) -> Iterator[Settings]:
    """What a worker booted in this process reads (get_settings): a migrated SQLite database of its
    own, the scripted model, no warm sandboxes, a test namespace (the session's end removes any
    sandbox left)."""
    url = f"sqlite:///{tmp_path}/worker.db"
    migrate(url)
    for name in ("REDIS_URL", "ASSISTD_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "ASSISTD_DATABASE_URL": url,
        "ASSISTD_FILES_DIR": str(tmp_path / "files"),
        "ASSISTD_SANDBOX_POOL_SIZE": "0",
        "ASSISTD_REDIS_NAMESPACE": TEST_NAMESPACE + secrets.token_hex(4),
        "OPENAI_BASE_URL": f"{model_server.url}/v1",
        "OPENAI_API_KEY": "sk-scripted",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def stub_worker(stub_broker: StubBroker, worker_settings: Settings) -> Iterator[dramatiq.Worker]:
    """A worker running workers.actors on the stub broker; its boot starts a Runner on `worker_settings`."""
    import workers.actors  # noqa: F401  (declares the actors and the worker's middleware on core.broker)

    worker = dramatiq.Worker(stub_broker, worker_timeout=100, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()
