"""The sandbox's second line: what the code leaves running, forged replies, odd input names,
output files that must not pass through memory, and the caps on sessions."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import docker
import pytest

from sandbox import InputFile, Sandboxes, SandboxLimit
from tests.sandbox.conftest import Loop, config

# the container's CPU time (cgroup v1 or v2), read by code in the sandbox, in seconds
CPU_SECONDS = """
from pathlib import Path
def cpu_seconds():
    v1 = Path('/sys/fs/cgroup/cpuacct/cpuacct.usage')
    if v1.exists():
        return int(v1.read_text()) / 1e9
    stat = dict(line.split() for line in Path('/sys/fs/cgroup/cpu.stat').read_text().splitlines())
    return int(stat['usage_usec']) / 1e6
"""

LEFTOVERS = """
import os, subprocess, threading, time
def spin():
    while True:
        pass
threading.Thread(target=spin, daemon=True).start()
subprocess.Popen(['python3', '-c', 'while True: pass'])
if os.fork() == 0:  # a daemon: forks again, leaves its own session
    os.setsid()
    if os.fork() == 0:
        spin()
    os._exit(0)
time.sleep(0.3)
print('started')
"""


def test_processes_and_threads_of_the_code_end_with_it(run: Loop, sandboxes: Sandboxes) -> None:
    run(sandboxes.execute("leftovers", CPU_SECONDS))
    started = run(sandboxes.execute("leftovers", LEFTOVERS + "x = 1"))
    assert (started.status, started.logs) == ("ok", "started\n")
    check = (
        "import os, threading, time, sys\n"
        "t0 = cpu_seconds(); time.sleep(2); used = cpu_seconds() - t0\n"
        "others = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "print(round(used, 1) < 0.3, len(sys._current_frames()), others == sorted({1, os.getpid()}))\n"
        "print(x)"
    )
    after = run(sandboxes.execute("leftovers", check))
    assert after.logs == "True 1 True\n1\n", after.logs  # nothing spins, the session's variables are kept


def test_a_thread_that_will_not_stop_resets_the_interpreter(run: Loop, sandboxes: Sandboxes) -> None:
    stubborn = (
        "import threading\n"
        "def spin():\n"
        "    while True:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
        "threading.Thread(target=spin).start()\n"
        "open('/mnt/data/kept.txt', 'w').write('kept')\n"
        "y = 2"
    )
    run(sandboxes.execute("stubborn", CPU_SECONDS))
    result = run(sandboxes.execute("stubborn", stubborn))
    result.close()
    assert result.status == "ok" and "still running after the execution" in result.logs
    assert "the session was reset" in result.logs
    check = (
        "import time\nt0 = cpu_seconds(); time.sleep(1.5)\n"
        "print('y' in globals(), round(cpu_seconds() - t0, 1) < 0.3, open('kept.txt').read())"
    )
    after = run(sandboxes.execute("stubborn", CPU_SECONDS + check))
    assert (after.logs, after.reset) == ("False True kept\n", False)


FORGE = """
import gc, json, os, sys
ids = set()
frame = sys._getframe()
while frame is not None:
    ids |= {v['id'] for v in frame.f_locals.values() if isinstance(v, dict) and isinstance(v.get('id'), str)}
    frame = frame.f_back
ids |= {o['id'] for o in gc.get_objects() if isinstance(o, dict) and isinstance(o.get('id'), str)}
reply = {'status': 'ok', 'logs': 'FORGED', 'images': [], 'files': []}
lines = b''.join(json.dumps({**reply, 'id': i}).encode() + b'\\n' for i in ids | {None})
for fd in range(3, 64):
    try:
        os.write(fd, lines)
    except OSError:
        pass
private = 0
others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]
for pid in others:
    try:
        for fd in os.listdir(f'/proc/{pid}/fd'):
            try:
                with open(f'/proc/{pid}/fd/{fd}', 'wb') as f:
                    f.write(lines)
            except OSError:
                pass
    except PermissionError:
        private += 1
print('real reply', private == len(others), os.getppid())
"""


def test_the_code_cannot_forge_the_runners_reply(run: Loop, sandboxes: Sandboxes) -> None:
    result = run(sandboxes.execute("forge", FORGE))
    assert result.status == "ok" and result.logs.startswith("real reply True 1\n"), result.logs
    assert "FORGED" not in result.logs
    again = run(sandboxes.execute("forge", "print('next')"))  # nothing forged is waiting for the next one
    assert (again.status, again.logs) == ("ok", "next\n")


def test_input_file_names_are_sanitized(run: Loop, sandboxes: Sandboxes) -> None:
    files = [
        InputFile("file-dot", ".", b"dot"),
        InputFile("file-dotdot", "..", b"dotdot"),
        InputFile("file-up", "../../tmp/up.txt", b"up"),
        InputFile("file-win", "C:\\Users\\me\\win.txt", b"win"),
        InputFile("file-plain", "plain.csv", b"a,b\n"),
    ]
    code = "import os\nprint(sorted(os.listdir('/mnt/data')), os.path.exists('/tmp/up.txt'))"
    result = run(sandboxes.execute("names", code, files))
    assert result.status == "ok", result.logs
    assert result.logs == "['file-dot', 'file-dotdot', 'plain.csv', 'up.txt', 'win.txt'] False\n"
    again = run(sandboxes.execute("names", "print(open('file-dotdot').read(), open('up.txt').read())", files))
    assert again.logs == "dotdot up\n"


def _peak_rss() -> int:
    found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1)) << 10


def test_output_files_do_not_pass_through_memory(run: Loop, namespace: str) -> None:
    sbx = Sandboxes(config(namespace, pool_size=0, memory_bytes=512 << 20, disk_bytes=160 << 20))
    run(sbx.start())
    try:
        code = (
            "import os\n"
            "for name in ('a.bin', 'b.bin', 'c.bin'):\n"
            "    with open(name, 'wb') as f:\n"
            "        for _ in range(40):\n"
            "            f.write(os.urandom(1 << 20))"
        )
        run(sbx.execute("big", "1"))
        Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from now
        before = _peak_rss()
        result = run(sbx.execute("big", code))
        grown = _peak_rss() - before
        assert result.status == "ok", result.logs
        assert [(f.path, f.size) for f in result.files] == [(f"/mnt/data/{n}.bin", 40 << 20) for n in "abc"]
        assert all(len(f.data.read()) == 40 << 20 for f in result.files)
        result.close()
        assert grown < 40 << 20, f"{grown >> 20} MiB more at the peak for 120 MiB of files"
    finally:
        run(sbx.close())


def test_sessions_are_capped_in_total_and_per_project(
    run: Loop, sandboxes: Sandboxes, namespace: str
) -> None:
    other = len(run(sandboxes.registry.live()))  # the module's other tests' sessions count too (one Redis)
    sbx = Sandboxes(config(namespace, pool_size=0, max_sessions=other + 2, max_project_sessions=1))
    run(sbx.start())
    try:
        assert run(sbx.execute("cap-a", "v = 1", project="p1")).status == "ok"
        with pytest.raises(SandboxLimit, match="this project has its maximum of 1"):
            run(sbx.execute("cap-b", "1", project="p1"))
        assert run(sbx.execute("cap-c", "1", project="p2")).status == "ok"
        with pytest.raises(SandboxLimit, match=f"maximum of {other + 2} code interpreter sessions"):
            run(sbx.execute("cap-d", "1", project="p3"))
        # a session already there goes on
        assert run(sbx.execute("cap-a", "print(v)", project="p1")).logs == "1\n"

        async def racing() -> list[object]:  # one creation at a time: two at once cannot both pass
            return await asyncio.gather(
                *(sbx.execute(f"race-{n}", "1", project=f"q{n}") for n in range(3)), return_exceptions=True
            )

        run(sbx.registry.drop("cap-c"))
        outcomes = run(racing())
        assert sum(not isinstance(o, SandboxLimit) for o in outcomes) == 1, outcomes
    finally:
        run(sbx.close())


def test_embedded_close_removes_its_sessions(run: Loop, namespace: str) -> None:
    """Embedded mode: nobody else can find this process's sessions once it stops, so close() removes them."""
    sbx = Sandboxes(config(namespace, redis_url=None, pool_size=1))
    run(sbx.start())
    run(sbx.execute("embedded-close", "1"))
    session = run(sbx.registry.get("embedded-close"))
    assert session is not None
    run(sbx.close())
    client = docker.from_env()
    mine = {"label": f"assistd.namespace={namespace}"}
    left = {c.id for c in client.containers.list(all=True, filters=mine)}
    client.close()
    assert session.container not in left


def test_closing_while_the_pool_starts_containers_leaves_none(run: Loop, namespace: str) -> None:
    """A stop just after start: the containers being created when the pool is cancelled are removed too."""
    sbx = Sandboxes(config(namespace, pool_size=2, owner="closing-early"))
    try:
        run(sbx.start())
        deadline = time.monotonic() + 10  # a loaded machine's engine may take a while to begin
        while sbx.pool.starting == 0 and not sbx.pool.ready:
            assert time.monotonic() < deadline, "the pool never began starting containers"
            run(asyncio.sleep(0.01))
        assert sbx.pool.starting > 0 and not sbx.pool.ready  # the engine is creating them now
    finally:
        run(sbx.close())  # also when the check fails: its Redis connection must not leak
    run(asyncio.sleep(3))  # what a creation thread still running would start
    client = docker.from_env()
    mine = {"label": "assistd.owner=closing-early"}
    left = [c.id for c in client.containers.list(all=True, filters=mine)]
    client.close()
    assert left == []


def _cpu_seconds(cid: str) -> float:
    client = docker.from_env()
    stats = client.api.stats(cid, stream=False)
    client.close()
    return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def test_a_sleeping_thread_cannot_wake_up_between_executions(run: Loop, sandboxes: Sandboxes) -> None:
    sleeper = (
        "import threading, time\n"
        "def later():\n"  # asleep when the execution ends, it swallows its SystemExit, then spins
        "    while True:\n"
        "        try:\n"
        "            time.sleep(1)\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
        "threading.Thread(target=later, daemon=True).start()\n"
        "z = 3"
    )
    assert run(sandboxes.execute("sleeper", sleeper)).status == "ok"
    session = run(sandboxes.registry.get("sleeper"))
    assert session is not None
    run(asyncio.sleep(1.5))
    first = _cpu_seconds(session.container)
    run(asyncio.sleep(2))
    assert _cpu_seconds(session.container) - first < 0.3  # measured from outside: nothing runs


# The code writes a result for the *next* cell into the kernel's own result pipe, in advance.
FORGE_NEXT = """
import json, os
for fd in map(int, os.listdir('/proc/self/fd')):
    try:
        if os.stat(fd).st_mode & 0o170000 == 0o010000:  # a pipe
            for n in range(1, 5):
                os.write(fd, json.dumps({"n": n, "status": "ok", "kept": "FORGED", "images": []}).encode() + b"\\n")
    except OSError:
        pass
print('planted')
"""


def test_a_cell_cannot_answer_for_the_next_one(run: Loop, sandboxes: Sandboxes) -> None:
    first = run(sandboxes.execute("forge-next", FORGE_NEXT))
    assert "FORGED" not in first.logs, first.logs
    again = run(sandboxes.execute("forge-next", "print('real')"))
    assert (again.status, again.logs) == ("ok", "real\n")


def test_a_kernel_that_closed_its_pipe_is_replaced(run: Loop, sandboxes: Sandboxes) -> None:
    """Code that closes the kernel's request pipe kills the kernel after its reply; the next
    execution must get a new interpreter, not a session broken until it is reaped."""
    code = (
        "import os, stat\n"
        "for fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    try:\n"
        "        flags = int(open(f'/proc/self/fdinfo/{fd}').read().split('flags:')[1].split()[0], 8)\n"
        "        if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode) and flags & 3 == 0:\n"
        "            os.close(fd)  # the kernel's request pipe: it reads no further cell\n"
        "    except (OSError, IndexError):\n"
        "        pass\n"
        "print('closed')"
    )
    run(sandboxes.execute("closer", code))
    first = run(sandboxes.execute("closer", "print(6 * 7)"))  # the kernel was gone: reset, and said so
    assert first.logs.endswith("42\n") or "the session was reset" in first.logs, (first.status, first.logs)
    after = run(sandboxes.execute("closer", "print(6 * 7)"))
    assert (after.status, after.logs) == ("ok", "42\n")
