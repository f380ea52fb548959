"""The command line as a user runs it: `python -m assistd ...` in a process of its own."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def assistd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `assistd *args` with a bare environment plus `env`; its output, never raising."""
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "-m", "assistd", *args],
        env=base | (env or {}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
