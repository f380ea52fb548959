"""`assistd api --workers N`: several API processes on one port, metrics that add up, one stop."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.procs import KEY_A, ScriptedModel, children, start_distributed, stop


def test_api_workers_share_the_port_and_the_metrics(model_server: ScriptedModel, tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"")  # a previous run's file: removed at start, not summed
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    server = start_distributed(model_server, tmp_path, workers=1, extra=extra, api_workers=2)
    try:
        api = server.procs[0]
        deadline = time.monotonic() + 20
        while len(children(api.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        kids = children(api.pid)
        assert len(kids) == 2
        headers = {"Authorization": f"Bearer {KEY_A}"}

        def get(_: int) -> int:
            # a new connection each time: the kernel spreads connections, not requests
            return httpx.get(f"{server.url}/v1/assistants", headers=headers, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(get, range(200))) == {200}
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        lines = [
            line
            for line in metrics.splitlines()
            if line.startswith("assistd_http_requests_total{") and 'route="/v1/assistants"' in line
        ]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == 200, lines
        files = os.listdir(shared)
        # the worker was given the same directory (extra reaches every process): it may count too
        writers = {int(f.rsplit("_", 1)[1].split(".")[0]) for f in files if f.startswith("counter_")}
        assert writers - {server.procs[1].pid} == kids
        # a child that dies is replaced
        os.kill(next(iter(kids)), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while (len(children(api.pid)) < 2 or children(api.pid) == kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(children(api.pid)) == 2 and children(api.pid) != kids
        assert get(0) == 200
        # one SIGTERM stops them all
        api.send_signal(signal.SIGTERM)
        assert api.wait(timeout=40) == 0
        for pid in children_left(kids):
            raise AssertionError(f"API process {pid} outlived its parent")
    finally:
        stop(server.procs)


def children_left(pids: set[int]) -> list[int]:
    return [
        p
        for p in pids
        if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]
    ]
