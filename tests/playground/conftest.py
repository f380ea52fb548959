"""The browser for the playground tests: Debian's Chromium driven by playwright-core (see .ci/browser.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import unavailable

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> str:
    """Node.js, with playwright-core installed from the lock file; fails in CI when anything is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None or not CHROMIUM.exists():
        unavailable("Chromium, Node.js and npm (bash .ci/browser.sh installs them)")
    if not (HERE / "node_modules" / "playwright-core").exists():
        subprocess.run(
            [str(npm), "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True, timeout=300
        )
    return str(node)
