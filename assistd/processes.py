"""Several API processes on one port (`assistd api --workers N`, `assistd serve --workers N`):
children that share the listening socket (the kernel hands each connection to one of them),
watched by this process. `api` forks them; `serve` starts new interpreters (`spawn`), as its
worker's threads already run in the parent.

Metrics still add up: the children write prometheus_client's multiprocess files into one
directory (PROMETHEUS_MULTIPROC_DIR; a temporary one when unset), which any child's /metrics
sums. A child that dies is replaced (after a pause if it dies at once: a broken start-up must
not spin); SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

log = logging.getLogger("assistd")
RESTART_PAUSE = 1.0  # before replacing a child that lived less than this
STOP_GRACE = 30.0  # for the children to finish their requests before they are killed
_spawned: dict[int, subprocess.Popen[bytes]] = {}


def shared_metrics_dir() -> str | None:
    """Point prometheus_client at a directory every child shares, before it is imported; the
    directory this process made (and removes at the end), if it made one."""
    if "prometheus_client" in sys.modules:  # its value class is fixed at import
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        for name in os.listdir(path):  # a previous run's counts would be summed in
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
        return None
    made = tempfile.mkdtemp(prefix="assistd-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def _fork(serve: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:  # the child: serve until stopped, never return into the parent's code
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            serve()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("API process failed")
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)
    return pid


def run(count: int, sock: socket.socket, serve: Callable[[], None]) -> int:
    """Fork `count` processes running `serve()` on `sock`; watch them until a stop signal."""
    made = shared_metrics_dir()
    try:
        return supervise(count, lambda: _fork(serve))
    finally:
        sock.close()
        if made:
            shutil.rmtree(made, ignore_errors=True)


def spawn(args: list[str], sock: socket.socket, env: dict[str, str]) -> int:
    """Start `python -m assistd <args> --from-fd N` on a copy of the listening socket. A new
    interpreter, not a fork: `assistd serve` forks no child once its worker's threads run (a
    fork copies a lock some other thread holds, held for ever)."""
    fd = sock.fileno()
    command = [sys.executable, "-m", "assistd", *args, "--from-fd", str(fd)]
    child = subprocess.Popen(command, pass_fds=(fd,), env=env)
    # held: a Popen dropped while its process runs is reaped by the subprocess module at the
    # next Popen, and `supervise` would never see that child die
    _spawned[child.pid] = child
    return child.pid


def supervise(count: int, start: Callable[[], int]) -> int:
    """Keep `count` children that `start()` starts (it returns the pid) until a stop signal."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = {start(): time.monotonic() for _ in range(count)}
    log.info("%d API processes: %s", count, " ".join(map(str, children)))
    try:
        while not stopping:
            pid, status = _exited(children)
            if pid == 0:
                time.sleep(0.2)
                continue
            started = children.pop(pid, time.monotonic())
            _dead(pid)
            if stopping:
                break
            log.warning("API process %d exited (status %d): starting another", pid, status)
            if time.monotonic() - started < RESTART_PAUSE:
                time.sleep(RESTART_PAUSE)
            children[start()] = time.monotonic()
    finally:
        _stop_all(children)
    return 0


def exit_with_parent() -> None:
    """End this process (SIGTERM, so it stops as asked to) when the process that started it
    is gone: a child of `assistd serve` cannot serve without the parent's queue and event log."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("the serving process %d is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="assistd-parent", daemon=True).start()


def _stop_all(children: dict[int, float]) -> None:
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE
    while children and time.monotonic() < deadline:
        pid, _ = _exited(children)
        if pid:
            children.pop(pid, None)
            _dead(pid)
        else:
            time.sleep(0.1)
    for pid in children:  # past the grace: they go now
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        _dead(pid)


def _exited(children: dict[int, float]) -> tuple[int, int]:
    """One of `children` that has exited (its pid and exit status), or (0, 0). Only these pids
    are waited for: `serve`'s worker may have children of its own, not ours to reap."""
    for pid in list(children):
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: gone all the same
            return pid, 0
        if got:
            return pid, os.waitstatus_to_exitcode(status)
    return 0, 0


def _dead(pid: int) -> None:
    """Drop a dead child's live gauges from the shared metrics (its counters stay summed)."""
    if (child := _spawned.pop(pid, None)) is not None:
        child.returncode = 0  # reaped by waitpid already: the subprocess module must not wait
    if "prometheus_client" in sys.modules:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
