"""The `assistd` command line: help, version, start-up logs, and refusing to start when misconfigured
or when its port is taken."""

import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, unavailable
from tests.procs import free_port, redis_available, spawn, stop
from tests.utils.cli import assistd


@pytest.mark.parametrize("command", ["serve", "api", "worker", "migrate"])
def test_help(command: str) -> None:
    out = assistd(command, "--help")
    assert out.returncode == 0 and "usage: assistd " + command in out.stdout
    if command in ("serve", "api"):
        assert "--host" in out.stdout and "--port" in out.stdout


def test_distributed_api_needs_keys(tmp_path: Path) -> None:
    out = assistd(
        "api", env={"ASSISTD_REDIS_URL": REDIS_URL, "ASSISTD_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    )
    assert out.returncode != 0 and "ASSISTD_API_KEYS" in out.stderr


@pytest.mark.parametrize("command", ["api", "worker"])
def test_distributed_refuses_unmigrated_database(command: str, tmp_path: Path) -> None:
    env = {
        "ASSISTD_REDIS_URL": REDIS_URL,
        "ASSISTD_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
        "ASSISTD_API_KEYS": "k=p",
    }
    out = assistd(command, env=env)
    assert out.returncode != 0 and "assistd migrate" in out.stderr
    assert assistd("migrate", env=env).returncode == 0


def test_distributed_needs_redis(tmp_path: Path) -> None:
    out = assistd("worker", env={"ASSISTD_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"})
    assert out.returncode != 0 and "REDIS_URL" in out.stderr


def test_version() -> None:
    out = assistd("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"assistd {version('assistd')}"


@pytest.mark.parametrize("command", ["serve", "api"])
def test_taken_port_fails_at_once(command: str, tmp_path: Path) -> None:
    env = {
        "ASSISTD_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
        "ASSISTD_FILES_DIR": str(tmp_path),
        "ASSISTD_REDIS_URL": REDIS_URL,
        "ASSISTD_API_KEYS": "k=p",
    }
    if command == "api":
        assert assistd("migrate", env=env).returncode == 0
    else:
        del env["ASSISTD_REDIS_URL"]  # embedded mode
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        out = assistd(command, "--port", str(port), env=env)
    # before migrating or starting a worker: only the interpreter's and the imports' start-up
    assert time.monotonic() - started < 5
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def wait_for_line(log: Path, proc: subprocess.Popen[bytes], text: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text().splitlines():
            if text in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no '{text}' in {log}:\n{log.read_text()}")


def test_start_up_logs_version_and_address(tmp_path: Path) -> None:
    port = free_port()
    env = {"ASSISTD_DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "ASSISTD_FILES_DIR": str(tmp_path)}
    proc = spawn([sys.executable, "-m", "assistd", "serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        line = wait_for_line(tmp_path / "serve.log", proc, "listening on")
    finally:
        stop([proc])
    assert f"assistd {version('assistd')} " in line and f"http://127.0.0.1:{port}" in line


def test_worker_logs_version(tmp_path: Path) -> None:
    if not redis_available():
        unavailable("Redis")
    env = {
        "ASSISTD_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
        "ASSISTD_REDIS_URL": REDIS_URL,
        "ASSISTD_WORKER_METRICS_PORT": "0",
    }
    assert assistd("migrate", env=env).returncode == 0
    proc = spawn([sys.executable, "-m", "assistd", "worker"], env, tmp_path / "worker.log")
    try:
        line = wait_for_line(tmp_path / "worker.log", proc, "worker started")
    finally:
        stop([proc])
    assert f"assistd {version('assistd')} " in line
