"""The `assistd` command line: help, and refusing to start when misconfigured."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, ROOT


def assistd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "-m", "assistd", *args],
        env=base | (env or {}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


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
