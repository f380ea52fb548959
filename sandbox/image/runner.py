"""The long-lived interpreter inside a sandbox container: a supervisor (the container's pid 1)
and a kernel (its child, which holds the session's variables and runs the user's code).

Why two processes: in one process, the user's code can reach anything the runner holds (stack
frames, gc, /proc/self/fd), so no fd trick or secret kept there keeps the host's reply channel
from being forged. The supervisor alone holds that channel (stdin/stdout of the container); the
kernel is forked before any request is read and closes every descriptor but its own two pipes;
then the supervisor makes itself non-dumpable, so a process of the same uid can neither ptrace
it nor open its /proc/<pid>/fd or /proc/<pid>/mem. What the kernel answers the supervisor (logs,
figures) is only what the code could print anyway; the supervisor itself decides the rest: which
input files land where, which processes survive, which files changed. Being pid 1 (no
docker-init, which would hold the container's stdio while dumpable), it cannot be killed or
stopped from inside the container either; it reaps the orphans the code leaves.

At the end of each execution the supervisor kills every process of the container but itself and
the kernel (forks, daemons, subprocesses), and the kernel stops the threads the code
started (an asynchronous SystemExit in each). A thread that keeps running anyway (in C, or
swallowing the exit) gets the kernel killed and restarted: its variables are lost, its files
are not. Between executions the kernel is stopped (SIGSTOP), so a thread idle at the end (a
sleep, a blocked read) cannot run until the next execution either.

Protocol: one JSON request per line on stdin, one JSON reply per line on the original stdout.
Request  {"id", "code", "timeout", "output_bytes", "files": [{"name", "data" (base64)}]}
Reply    {"id", "status": "ok"|"error"|"timeout"|"memory"|"crashed", "logs", "images": [b64 png],
          "files": [{"path", "size"}], "restarted": bool (the kernel was replaced: variables lost)}
Output files are listed, not sent: the host copies them out itself, in chunks.
A request without "code" is a ping (the host uses it to know the interpreter is ready).
This file runs on the image's python3 (3.11) with the standard library only.
"""

import ast
import base64
import builtins
import contextlib
import ctypes
import io
import json
import linecache
import os
import secrets
import select
import shutil
import signal
import sys
import threading
import time
import traceback
import typing
import warnings

DATA = "/mnt/data"
FD_LOG = "/tmp/.assistd-fd-output"
MAX_FILE_BYTES = 50 << 20  # an output file larger than this is reported, not returned
MAX_RESULT_BYTES = 128 << 20  # what the kernel may answer (logs are capped; figures are not)
MAX_FILES = 100  # output files returned per execution: each becomes a File of the project
THREAD_GRACE = 1.0  # seconds the code's threads have to end after their SystemExit
KILL_GRACE = 1.5  # past the timeout, a kernel that did not answer is killed
PR_SET_DUMPABLE = 4
Json = dict[str, typing.Any]


class Timeout(BaseException):
    """Raised in the user's code when its wall time is over (BaseException: `except Exception` won't eat it)."""


class Capture(io.TextIOBase):
    """stdout and stderr of the user's code: kept in order up to a limit, the rest counted."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0
        self.limit = limit

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self) -> str:
        out = "".join(self.parts)
        if self.dropped:
            out += f"\n[... output truncated: {self.dropped} more characters not shown ...]\n"
        return out


# ---- the kernel: the user's code, in a child process ----


def _on_alarm(signum: int, frame: object) -> None:
    raise Timeout()


def _figures() -> list[str]:
    if "matplotlib.pyplot" not in sys.modules:
        return []
    plt = sys.modules["matplotlib.pyplot"]
    images = []
    for num in plt.get_fignums():
        buf = io.BytesIO()
        plt.figure(num).savefig(buf, format="png")
        images.append(base64.b64encode(buf.getvalue()).decode())
    plt.close("all")
    return images


def _run(code: str, ns: dict[str, object], filename: str) -> None:
    """exec the cell; like a notebook, a final expression's value is printed."""
    tree = ast.parse(code, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        tree.body.pop()
    exec(compile(tree, filename, "exec"), ns)
    if last is not None:
        value = eval(compile(last, filename, "eval"), ns)
        if value is not None:
            print(repr(value))


def _format_error(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
        tb = tb.tb_next  # hide the runner's own frames
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _reap_children() -> None:
    """Collect exited children (a fork bomb's zombies would hold the pids limit forever)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _stop_threads() -> None:
    """Raise SystemExit in every thread but this one, and give them a moment to end."""
    me = threading.get_ident()
    for ident in sys._current_frames():
        if ident != me:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(SystemExit))
    deadline = time.monotonic() + THREAD_GRACE
    while len(sys._current_frames()) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)


def _cell(request: dict[str, typing.Any], ns: dict[str, object]) -> dict[str, typing.Any]:
    _reap_children()
    capture = Capture(int(request.get("output_bytes", 20000)))
    filename = f"<cell-{request['n']}>"
    code = request["code"]
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    sys.stdout = sys.stderr = capture
    status = "ok"
    signal.setitimer(signal.ITIMER_REAL, float(request.get("timeout", 60)))
    try:
        _run(code, ns, filename)
    except Timeout:
        status = "timeout"
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the session lives on
        status = "error"
        capture.write(_format_error(exc))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if os.getpid() != KERNEL_PID[0]:  # a child forked by the user's code must not become a second kernel
            os._exit(1)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    _stop_threads()
    _reap_children()
    images = _figures()
    return {
        "n": request["n"],
        "status": status,
        "kept": "".join(capture.parts),
        "dropped": capture.dropped,
        "images": images,
    }


KERNEL_PID = [0]


def kernel_loop(requests: typing.BinaryIO, results: typing.BinaryIO) -> None:
    """The kernel's loop: one cell per line from the supervisor, one result per line back."""
    KERNEL_PID[0] = os.getpid()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ns: dict[str, object] = {"__name__": "__main__", "__builtins__": builtins}
    for line in requests:
        request = json.loads(line)
        try:
            result = _cell(request, ns)
        except Timeout:  # the alarm fired after the code ended (capturing figures)
            result = {"n": request["n"], "status": "timeout", "kept": "", "dropped": 0, "images": []}
        result["nonce"] = request.get("nonce")  # the supervisor takes no result without this cell's nonce
        results.write(json.dumps(result).encode() + b"\n")
        results.flush()
    os._exit(0)


# ---- the supervisor: the host's channel, files and processes ----


def _setup() -> tuple[typing.BinaryIO, typing.BinaryIO]:
    """Move the protocol off fds 0/1/2 so nothing a process of the code inherits can touch it."""
    proto = os.fdopen(os.dup(1), "wb")
    requests = os.fdopen(os.dup(0), "rb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(FD_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdin = open(os.devnull)
    os.makedirs(os.environ.get("MPLCONFIGDIR", "/tmp/matplotlib"), exist_ok=True)
    prebuilt = "/opt/assistd/matplotlib"
    if os.path.isdir(prebuilt):  # the font cache built in the image (the root fs is read-only)
        shutil.copytree(prebuilt, os.environ.get("MPLCONFIGDIR", "/tmp/matplotlib"), dirs_exist_ok=True)
    # plt.show() on Agg: figures are captured after each execution, nothing to warn about
    warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
    return proto, requests


class Kernel:
    """The child process that runs the code; started again after it dies or is killed."""

    def __init__(self) -> None:
        self.pid = 0
        self.exit: int | None = None  # its wait status, once collected
        self.start()

    def start(self) -> None:
        to_kernel, from_super = os.pipe()
        from_kernel, to_super = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                _become_kernel({0, 1, 2, to_kernel, to_super})
                kernel_loop(os.fdopen(to_kernel, "rb"), os.fdopen(to_super, "wb"))
            finally:
                os._exit(1)
        os.close(to_kernel)
        os.close(to_super)
        self.pid, self.exit = pid, None
        self.send = os.fdopen(from_super, "wb")
        self.results = from_kernel
        self.buffer = b""

    def wait(self) -> int:
        """Its wait status (it is dead or being killed)."""
        if self.exit is None:
            try:
                self.exit = os.waitpid(self.pid, 0)[1]
            except ChildProcessError:
                self.exit = 0
        return self.exit

    def kill(self) -> None:
        if self.exit is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()

    def freeze(self, frozen: bool) -> None:
        """Stop (SIGSTOP: it cannot be caught) or continue the kernel and whatever threads it has."""
        try:
            os.kill(self.pid, signal.SIGSTOP if frozen else signal.SIGCONT)
        except ProcessLookupError:
            pass

    def restart(self) -> None:
        self.kill()
        # a kernel that died with a request unread leaves it in the buffer: closing retries the write
        with contextlib.suppress(OSError):
            self.send.close()
        with contextlib.suppress(OSError):
            os.close(self.results)
        self.start()

    def run(self, request: Json, deadline: float) -> tuple[Json | None, str]:
        """The kernel's result for this cell, or None and why not: "late", "large" or "died".
        A result counts only with the cell's nonce, and what the code wrote to the pipe before
        this cell is dropped: an earlier cell cannot answer for a later one."""
        self.buffer = b""
        request = request | {"nonce": secrets.token_hex(16)}
        try:
            self.send.write(json.dumps(request).encode() + b"\n")
            self.send.flush()
        except (OSError, ValueError):  # ValueError: the pipe was closed under a dead kernel
            return None, "died"
        while True:
            while b"\n" in self.buffer:
                line, _, self.buffer = self.buffer.partition(b"\n")
                try:
                    result = json.loads(line)
                except ValueError:
                    continue  # the code wrote to the kernel's pipe: its own lines are ignored
                if (
                    isinstance(result, dict)
                    and result.get("n") == request["n"]
                    and result.get("nonce") == request["nonce"]
                ):
                    return result, ""
            if len(self.buffer) > MAX_RESULT_BYTES:
                return None, "large"
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "late"
            if not select.select([self.results], [], [], left)[0]:
                continue
            chunk = os.read(self.results, 1 << 20)
            if not chunk:
                return None, "died"
            self.buffer += chunk

    def running_threads(self) -> bool:
        """Whether a thread besides the kernel's main one is on a CPU (checked over ~10 ms; at
        once when the kernel has no other thread, the usual case: this is on every execution's
        path, and a thread that is asleep now is frozen with the kernel until the next one)."""
        for _ in range(5):
            try:
                tids = [t for t in os.listdir(f"/proc/{self.pid}/task") if t != str(self.pid)]
            except OSError:
                return False
            if not tids:
                return False
            for tid in tids:
                try:
                    with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue
                if state == "R":
                    return True
            time.sleep(0.002)
        return False


def _become_kernel(keep: set[int]) -> None:
    """In the forked child: drop every descriptor of the supervisor's (its channel above all),
    be dumpable again (a restarted kernel inherits the supervisor's flag), and be the one the
    OOM killer takes first, so a memory bomb kills the kernel, not the supervisor."""
    for fd in [int(fd) for fd in os.listdir("/proc/self/fd")]:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor
    try:
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except (OSError, AttributeError):
        pass


def _private() -> None:
    """Non-dumpable: same-uid processes lose ptrace and /proc/<pid>/{fd,mem} access to us."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _reap(kernel: Kernel) -> None:
    """Collect exited children and orphans (pid 1 inherits them): their zombies would hold the
    pids limit forever. The kernel's status is kept for it."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == kernel.pid:
            kernel.exit = status


def _kill_strays(kernel: Kernel) -> None:
    """SIGKILL every process of the container but this one and the kernel, until none is left
    (forks race us), then reap the orphans among them."""
    keep = {os.getpid(), kernel.pid}
    for _ in range(200):
        left = False
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in keep:
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue  # dead already, waiting for its parent
                os.kill(int(name), signal.SIGKILL)
                left = True
            except (OSError, IndexError):
                continue
        if not left:
            break
        time.sleep(0.005)
    _reap(kernel)


def safe_name(name: str, fallback: str) -> str:
    """The last part of `name` as a plain file name in /mnt/data (`.`, `..`, empty: fallback)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\0", "")
    return base if base not in ("", ".", "..") else fallback


def _write_inputs(files: list[dict[str, str]], capture: Capture) -> None:
    for n, item in enumerate(files):
        path = os.path.join(DATA, safe_name(str(item.get("name", "")), f"file-{n}"))
        try:
            with open(path, "wb") as f:
                f.write(base64.b64decode(item["data"]))
        except (OSError, ValueError, KeyError) as exc:  # one bad file must not hide the others
            capture.write(f"[input file {path} could not be written: {exc}]\n")


def _snapshot() -> dict[str, tuple[int, int]]:
    """Regular files under /mnt/data (symlinks are not followed, nor returned)."""
    seen = {}
    for root, _dirs, names in os.walk(DATA):
        for name in names:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o100000:
                seen[path] = (st.st_mtime_ns, st.st_size)
    return seen


def _fd_output() -> str:
    """What subprocesses wrote to fds 1/2 during this execution (then the file is emptied)."""
    try:
        with open(FD_LOG, "rb") as f:
            data = f.read(64 << 10)
        os.truncate(FD_LOG, 0)  # fds 1/2 are O_APPEND: the next writes start at 0 again
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def _changed_files(before: dict[str, tuple[int, int]], capture: Capture) -> list[dict[str, typing.Any]]:
    files: list[dict[str, typing.Any]] = []
    for path, stamp in sorted(_snapshot().items()):
        if before.get(path) == stamp:
            continue
        if stamp[1] > MAX_FILE_BYTES:
            capture.write(f"\n[{path} is {stamp[1]} bytes: too large to return]\n")
            continue
        if len(files) == MAX_FILES:
            capture.write(f"\n[more than {MAX_FILES} files changed: {path} and the rest are not returned]\n")
            break
        files.append({"path": path, "size": stamp[1]})
    return files


def _oom_kills() -> int:
    """The container's OOM kill count (cgroup v2 or v1); 0 when unknown."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return 0


def _status(result: dict[str, typing.Any] | None, failure: str, ooms: int, kernel: Kernel) -> tuple[str, str]:
    """The execution's status and, when the kernel must be replaced, why (the host words
    "timeout" and "memory" itself: it knows the limits)."""
    if failure == "late":
        return "timeout", "Execution timed out and could not be interrupted"
    if failure == "large":
        return "error", "The execution's results were too large to return"
    if failure == "died":  # (or closed its pipe: it is killed either way)
        kernel.kill()
        state = kernel.wait()
        if _oom_kills() > ooms:
            return "memory", "Execution ran out of memory and was killed"
        how = f"signal {os.WTERMSIG(state)}" if os.WIFSIGNALED(state) else f"exit {os.WEXITSTATUS(state)}"
        return "crashed", f"The code's interpreter died ({how})"
    assert result is not None
    status = result.get("status")
    return (status if status in ("ok", "error", "timeout") else "error"), ""


def supervise(request: dict[str, typing.Any], kernel: Kernel, count: int) -> dict[str, typing.Any]:
    kernel.freeze(False)
    capture = Capture(int(request.get("output_bytes", 20000)))
    _write_inputs(request.get("files", []), capture)
    before = _snapshot()
    ooms = _oom_kills()
    timeout = float(request.get("timeout", 60))
    room = capture.limit - capture.kept
    cell = {"n": count, "code": request["code"], "timeout": timeout, "output_bytes": room}
    result, failure = kernel.run(cell, time.monotonic() + timeout + THREAD_GRACE + KILL_GRACE)
    status, why = _status(result, failure, ooms, kernel)
    if not why and kernel.running_threads():
        why = "A thread the code started was still running after the execution and could not be stopped"
    # the kernel is stopped (or killed) before the strays are: a kernel still running the code
    # (late, or a thread that swallowed its SystemExit) could fork again behind the sweep
    if why:
        kernel.kill()
    else:
        kernel.freeze(True)  # until the next execution: a thread that sleeps now and spins later cannot
    _kill_strays(kernel)
    if why:
        kernel.restart()
        kernel.freeze(True)
    images = []
    if result is not None:
        capture.write(str(result.get("kept", "")))
        capture.dropped += int(result.get("dropped", 0) or 0)
        images = [png for png in result.get("images", []) if isinstance(png, str)]
    capture.write(_fd_output())
    files = _changed_files(before, capture)
    reply: dict[str, typing.Any] = {
        "status": status,
        "logs": capture.text(),
        "images": images,
        "files": files,
    }
    reply["restarted"] = bool(why)
    if why:
        reply["why"] = why
    return reply


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # pid 1 ignores signals it has no handler for: keep it so
    proto, requests = _setup()
    kernel = Kernel()
    kernel.freeze(True)
    _private()
    count = 0
    for line in requests:
        request = json.loads(line)
        if "code" in request:
            count += 1
            try:
                reply = supervise(request, kernel, count)
            except Exception:  # the supervisor's own failure
                logs = "The sandbox failed around the code:\n" + traceback.format_exc()
                reply = {"status": "error", "logs": logs, "images": [], "files": []}
        else:
            reply = {"status": "ok"}
        reply["id"] = request.get("id")
        proto.write(json.dumps(reply).encode() + b"\n")
        proto.flush()


if __name__ == "__main__":
    main()
