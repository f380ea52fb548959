"""The sandbox against a real Docker engine and image: sessions, files, plots, limits, hostile code."""

from __future__ import annotations

import asyncio
import socket
import time

import docker
import pytest

from sandbox import Execution, InputFile, Sandboxes, SandboxUnavailable
from sandbox.engine import Engine
from sandbox.registry import Session
from tests.sandbox.conftest import Loop, config


def gone(run: Loop, sbx: Sandboxes, cid: str) -> bool:
    for _ in range(50):  # removal by a concurrent reaper may still be in progress
        if cid not in {c["Id"] for c in run(sbx.engine.list())}:
            return True
        time.sleep(0.1)
    return False


def healthy(run: Loop, sbx: Sandboxes, key: str) -> None:
    result = run(sbx.execute(key, "print('still here')"))
    assert (result.status, result.logs) == ("ok", "still here\n")


def test_state_persists_between_executions(run: Loop, sandboxes: Sandboxes) -> None:
    first = run(sandboxes.execute("state", "import math\nx = 41\nprint('hi')"))
    assert (first.status, first.logs, first.reset) == ("ok", "hi\n", False)
    second = run(sandboxes.execute("state", "math.floor(x + 1.5)"))  # a final expression is shown
    assert (second.status, second.logs, second.reset) == ("ok", "42\n", False)


def test_new_session_takes_a_warm_container(run: Loop, sandboxes: Sandboxes) -> None:
    for _ in range(100):
        if sandboxes.pool.ready:
            break
        run(asyncio.sleep(0.05))
    warm = list(sandboxes.pool.ready)
    run(sandboxes.execute("warm", "1"))
    session = run(sandboxes.registry.get("warm"))
    assert session is not None and session.container in warm


def test_input_file_is_readable_and_copied_once(run: Loop, sandboxes: Sandboxes) -> None:
    data = InputFile("file-abc", "data.csv", b"a,b\n1,2\n")
    result = run(
        sandboxes.execute(
            "input", "import pandas as pd\nprint(pd.read_csv('/mnt/data/data.csv').b.sum())", [data]
        )
    )
    assert (result.status, result.logs.strip(), result.files) == ("ok", "2", [])
    edit = run(sandboxes.execute("input", "open('/mnt/data/data.csv', 'a').write('3,4\\n')"))
    assert [f.path for f in edit.files] == ["/mnt/data/data.csv"]
    edit.close()
    again = run(sandboxes.execute("input", "print(open('data.csv').read())", [data]))
    assert again.logs == "a,b\n1,2\n3,4\n\n"  # not copied a second time: the session's edit is kept


def test_input_file_is_read_from_storage_only_when_the_session_lacks_it(
    run: Loop, sandboxes: Sandboxes
) -> None:
    reads: list[str] = []

    def read() -> bytes:
        reads.append("data.csv")
        return b"n\n5\n"

    lazy = InputFile("file-lazy", "data.csv", read)
    for _ in range(3):
        result = run(sandboxes.execute("lazy", "print(open('/mnt/data/data.csv').read().split()[1])", [lazy]))
        assert (result.status, result.logs) == ("ok", "5\n")
    assert reads == ["data.csv"]  # once, for the session's first execution


def test_output_files_are_returned(run: Loop, sandboxes: Sandboxes) -> None:
    code = "import os\nos.makedirs('sub', exist_ok=True)\nopen('/mnt/data/sub/out.txt', 'w').write('hello')"
    result = run(sandboxes.execute("output", code))
    assert result.status == "ok"
    assert [(f.path, f.size, f.data.read()) for f in result.files] == [("/mnt/data/sub/out.txt", 5, b"hello")]
    result.close()
    unchanged = run(sandboxes.execute("output", "x = 1"))
    assert unchanged.files == []


def test_matplotlib_figure_comes_back_as_png(run: Loop, sandboxes: Sandboxes) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()"
    result = run(sandboxes.execute("plot", code))
    assert result.status == "ok", result.logs
    assert len(result.images) == 1 and result.images[0].startswith(b"\x89PNG\r\n")
    assert result.logs == ""
    assert run(sandboxes.execute("plot", "plt.get_fignums()")).logs == "[]\n"  # closed after capture


def test_exception_gives_a_traceback(run: Loop, sandboxes: Sandboxes) -> None:
    result = run(sandboxes.execute("error", "print('before')\ndef f():\n    return 1 / 0\nf()"))
    assert result.status == "error"
    assert result.logs.startswith("before\nTraceback (most recent call last):")
    assert "return 1 / 0" in result.logs and "ZeroDivisionError: division by zero" in result.logs
    assert "runner.py" not in result.logs
    healthy(run, sandboxes, "error")


def test_no_network(run: Loop, sandboxes: Sandboxes) -> None:
    code = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)"
    result = run(sandboxes.execute("net", code))
    assert result.status == "error" and "OSError" in result.logs and "unreachable" in result.logs
    healthy(run, sandboxes, "net")


def test_fork_bomb_is_contained(run: Loop, sandboxes: Sandboxes) -> None:
    result = run(sandboxes.execute("fork", "import os\nwhile True:\n    os.fork()"))
    assert result.status == "error" and "Resource temporarily unavailable" in result.logs
    healthy(run, sandboxes, "fork")


def test_memory_bomb_is_reported(run: Loop, sandboxes: Sandboxes) -> None:
    run(sandboxes.execute("memory", "x = 1"))
    result = run(sandboxes.execute("memory", "s = 'x' * (600 << 20)"))
    assert result.status == "memory" and "ran out of memory (limit 256 MiB)" in result.logs, result.logs
    after = run(sandboxes.execute("memory", "print('x' in globals())"))
    assert (after.status, after.logs, after.reset) == ("ok", "False\n", False)  # already told


def test_disk_is_limited(run: Loop, sandboxes: Sandboxes) -> None:
    code = (
        "with open('/mnt/data/big', 'wb') as f:\n    for _ in range(64):\n        f.write(b'x' * (1 << 20))"
    )
    result = run(sandboxes.execute("disk", code))
    assert result.status == "error" and "No space left on device" in result.logs
    result.close()
    healthy(run, sandboxes, "disk")


def test_host_is_out_of_reach(run: Loop, sandboxes: Sandboxes) -> None:
    code = (
        "import os\nprint(os.getuid(), os.path.exists('/var/run/docker.sock'), os.path.exists('/work'))\n"
        "print([l.split()[3].split(',')[0] for l in open('/proc/mounts') if l.split()[1] == '/'])\n"
        "open('/etc/shadow').read()"
    )
    result = run(sandboxes.execute("host", code))
    assert result.status == "error"
    assert result.logs.startswith("1000 False False\n['ro']\n") and "PermissionError" in result.logs
    write = run(sandboxes.execute("host", "open('/opt/evil', 'w')"))
    assert write.status == "error" and (
        "Read-only file system" in write.logs or "Permission denied" in write.logs
    )
    root = run(sandboxes.execute("host", "import os\nos.setuid(0)"))
    assert root.status == "error" and "PermissionError" in root.logs


def test_limits_are_applied(run: Loop, sandboxes: Sandboxes) -> None:
    code = (
        "from pathlib import Path\n"
        "v2 = Path('/sys/fs/cgroup/cpu.max').exists()\n"
        "read = lambda v1, v2_: Path('/sys/fs/cgroup', v2_ if v2 else v1).read_text().split()\n"
        "print(read('cpu/cpu.cfs_quota_us', 'cpu.max')[0], read('memory/memory.limit_in_bytes', 'memory.max')[0],"
        " read('pids/pids.max', 'pids.max')[0])"
    )
    result = run(sandboxes.execute("limits", code))
    assert result.logs == f"100000 {256 << 20} 64\n", result.logs


def test_huge_output_is_truncated(run: Loop, sandboxes: Sandboxes) -> None:
    result = run(
        sandboxes.execute("print", "print('x' * 10_000_000)\nimport os\nos.system('echo from-a-subprocess')")
    )
    assert result.status == "ok"
    assert (
        result.logs.startswith("x" * 2000) and "output truncated" in result.logs and len(result.logs) < 2200
    )


def test_infinite_loops_time_out(run: Loop, namespace: str) -> None:
    sbx = Sandboxes(config(namespace, timeout_seconds=1, pool_size=0))
    run(sbx.start())
    try:
        run(sbx.execute("loop", "x = 5"))
        interrupted = run(sbx.execute("loop", "while True:\n    pass"))
        assert interrupted.status == "timeout" and "timed out after 1 s" in interrupted.logs
        assert run(sbx.execute("loop", "print(x)")).logs == "5\n"  # interrupted, the session lives
        stubborn = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
        killed = run(sbx.execute("loop", stubborn))
        assert killed.status == "timeout" and "the session was reset" in killed.logs
        after = run(sbx.execute("loop", "print('x' in globals())"))
        assert (after.logs, after.reset) == ("False\n", False)
    finally:
        run(sbx.close())


def test_another_worker_attaches_to_the_session(run: Loop, sandboxes: Sandboxes, namespace: str) -> None:
    other = Sandboxes(config(namespace, pool_size=0))
    run(other.start())
    try:
        run(sandboxes.execute("shared", "y = 7"))
        result = run(other.execute("shared", "print(y)"))
        assert (result.logs, result.reset) == ("7\n", False)
        # both at once on a new key: the lock makes them share one session
        code = "import socket\nprint(socket.gethostname())"

        async def both() -> tuple[Execution, Execution]:
            return await asyncio.gather(sandboxes.execute("both", code), other.execute("both", code))

        a, b = run(both())
        assert a.logs == b.logs and a.status == "ok"
    finally:
        run(other.close())


def test_a_lost_session_is_reported_as_reset(run: Loop, sandboxes: Sandboxes) -> None:
    run(sandboxes.execute("lost", "z = 1"))
    run(sandboxes.registry.put("lost", Session("0" * 64, sandboxes.engine.id)))  # container gone
    result = run(sandboxes.execute("lost", "print('z' in globals())"))
    assert (result.status, result.logs, result.reset) == ("ok", "False\n", True)
    run(sandboxes.registry.put("lost", Session("abc", "another-engine")))
    assert run(sandboxes.execute("lost", "1")).reset is True


def test_reaper_removes_a_crashed_owners_containers(run: Loop, sandboxes: Sandboxes, namespace: str) -> None:
    crashed = Engine(config(namespace, owner="crashed-worker"))
    run(crashed.connect())
    orphan = run(crashed.run())  # a pool container whose owner has no heartbeat
    run(sandboxes.execute("keep", "k = 1"))
    assert run(sandboxes.reap()) >= 1
    assert gone(run, sandboxes, orphan)
    assert set(sandboxes.pool.ready) <= {c["Id"] for c in run(sandboxes.engine.list())}
    assert run(sandboxes.execute("keep", "print(k)")).logs == "1\n"
    run(crashed.close())


def test_embedded_registry_expires_idle_sessions(run: Loop, namespace: str) -> None:
    sbx = Sandboxes(config(namespace, redis_url=None, idle_seconds=1, pool_size=0))
    run(sbx.start())
    try:
        run(sbx.execute("idle", "v = 3"))
        assert run(sbx.execute("idle", "print(v)")).logs == "3\n"
        old = run(sbx.registry.get("idle"))
        assert old is not None
        time.sleep(1.2)
        result = run(sbx.execute("idle", "print('v' in globals())"))
        assert (result.logs, result.reset) == ("False\n", True)
        # the expired session's container is ours, unreferenced: removed once past the start-up grace
        # (the background reaper runs every second here: it may be the one that removes it)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("sandbox.reaper.GRACE_SECONDS", 0.0)
            run(sbx.reap())
            assert gone(run, sbx, old.container)
        # a crashed embedded worker on this host: its pid is gone
        crashed = Engine(config(namespace, owner=f"{socket.gethostname()}:999999999:w1"))
        run(crashed.connect())
        orphan = run(crashed.call(crashed._run))  # no ping: the background reaper may take it at once
        run(crashed.close())
        run(sbx.reap())
        assert gone(run, sbx, orphan)
    finally:
        run(sbx.close())


def test_unavailable_engine_or_image(run: Loop, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = Sandboxes(config(namespace, image="assistd-sandbox:absent"))
    run(absent.start())
    assert "assistd-sandbox:absent is absent" in (run(absent.unavailable()) or "")
    with pytest.raises(SandboxUnavailable, match="absent"):
        run(absent.execute("k", "1"))
    run(absent.close())
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # (a missing unix socket: docker-py leaks one)
    down = Sandboxes(config(namespace))
    run(down.start())
    assert "unreachable" in (run(down.unavailable()) or "")
    run(down.close())


def test_nothing_is_left_behind_by_a_closed_instance(run: Loop, namespace: str) -> None:
    sbx = Sandboxes(config(namespace, pool_size=2))
    run(sbx.start())
    for _ in range(200):
        if len(sbx.pool.ready) == 2:
            break
        run(asyncio.sleep(0.05))
    pooled = set(sbx.pool.ready)
    run(sbx.close())
    client = docker.from_env()
    left = {
        c.id for c in client.containers.list(all=True, filters={"label": f"assistd.namespace={namespace}"})
    }
    client.close()
    assert len(pooled) == 2 and not pooled & left


def test_numpy_work_keeps_the_session(run: Loop, sandboxes: Sandboxes) -> None:
    """Idle BLAS threads spin after a computation; they must not pass for threads the code left
    running (the session would be reset and its variables lost)."""
    for i in range(5):
        code = (
            f"import numpy as np\na{i} = np.random.rand(300, 300)\nb = a{i} @ a{i}.T\nprint(int(b.shape[0]))"
        )
        result = run(sandboxes.execute("blas", code))
        assert (result.status, result.logs) == ("ok", "300\n"), result.logs
    assert (
        run(
            sandboxes.execute(
                "blas", "print(sorted(k for k in globals() if k[:1] == 'a' and k[1:].isdigit()))"
            )
        ).logs
        == "['a0', 'a1', 'a2', 'a3', 'a4']\n"
    )
