"""The long-lived interpreter inside a sandbox container (its main process, under docker-init).

Protocol: one JSON request per line on stdin, one JSON reply per line on the original stdout.
The user's code never sees that channel: its stdout/stderr are captured in memory (capped), its
file descriptors 1 and 2 point to a file in /tmp (for subprocesses), stdin is /dev/null.

Request  {"id", "code", "timeout", "output_bytes", "files": [{"name", "data" (base64)}]}
Reply    {"id", "status": "ok"|"error"|"timeout", "logs", "images": [b64 png], "files": [{"path", "data"}]}
A request without "code" is a ping (the host uses it to know the interpreter is ready).
This file runs on the image's python3 (3.11) with the standard library only.
"""

import ast
import base64
import builtins
import io
import json
import linecache
import os
import shutil
import signal
import sys
import traceback
import typing
import warnings

DATA = "/mnt/data"
FD_LOG = "/tmp/.assistd-fd-output"
MAX_FILE_BYTES = 50 << 20  # an output file larger than this is reported, not returned
MAIN_PID = os.getpid()


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


def _setup() -> tuple[typing.BinaryIO, typing.BinaryIO]:
    """Move the protocol off fds 0/1/2 so nothing the user's code does can corrupt it."""
    proto = os.fdopen(os.dup(1), "wb")
    requests = os.fdopen(os.dup(0), "rb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(FD_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdin = open(os.devnull)
    os.makedirs(os.environ.get("MPLCONFIGDIR", "/tmp/matplotlib"), exist_ok=True)
    prebuilt = "/opt/assistd/matplotlib"
    if os.path.isdir(prebuilt):  # the font cache built in the image (the root fs is read-only)
        shutil.copytree(prebuilt, os.environ.get("MPLCONFIGDIR", "/tmp/matplotlib"), dirs_exist_ok=True)
    signal.signal(signal.SIGALRM, _on_alarm)
    # plt.show() on Agg: figures are captured after each execution, nothing to warn about
    warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
    return proto, requests


def _on_alarm(signum: int, frame: object) -> None:
    raise Timeout()


def _snapshot() -> dict[str, tuple[int, int]]:
    seen = {}
    for root, _dirs, names in os.walk(DATA):
        for name in names:
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
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


def _reap_children() -> None:
    """Collect exited children (a fork bomb's zombies would hold the pids limit forever)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


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


def _changed_files(before: dict[str, tuple[int, int]], capture: Capture) -> list[dict[str, str]]:
    files = []
    for path, stamp in sorted(_snapshot().items()):
        if before.get(path) == stamp:
            continue
        if stamp[1] > MAX_FILE_BYTES:
            capture.write(f"\n[{path} is {stamp[1]} bytes: too large to return]\n")
            continue
        try:
            with open(path, "rb") as f:
                files.append({"path": path, "data": base64.b64encode(f.read()).decode()})
        except OSError:
            continue
    return files


def execute(request: dict[str, typing.Any], ns: dict[str, object], count: int) -> dict[str, typing.Any]:
    for item in request.get("files", []):
        path = os.path.join(DATA, os.path.basename(item["name"]))
        with open(path, "wb") as f:
            f.write(base64.b64decode(item["data"]))
    capture = Capture(int(request.get("output_bytes", 20000)))
    before = _snapshot()
    filename = f"<cell-{count}>"
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
        if os.getpid() != MAIN_PID:  # a child forked by the user's code must not become a second runner
            os._exit(1)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    _reap_children()
    images = _figures()
    capture.write(_fd_output())
    files = _changed_files(before, capture)
    return {"status": status, "logs": capture.text(), "images": images, "files": files}


def main() -> None:
    proto, requests = _setup()
    ns: dict[str, object] = {"__name__": "__main__", "__builtins__": builtins}
    count = 0
    for line in requests:
        request = json.loads(line)
        if "code" in request:
            count += 1
            try:
                reply = execute(request, ns, count)
            except Timeout:  # the alarm fired after the code ended (capturing figures, files)
                reply = {"status": "timeout", "logs": "", "images": [], "files": []}
            except Exception:  # the runner's own failure (say, an input file that cannot be written)
                logs = "The sandbox failed around the code:\n" + traceback.format_exc()
                reply = {"status": "error", "logs": logs, "images": [], "files": []}
        else:
            reply = {"status": "ok"}
        reply["id"] = request.get("id")
        proto.write(json.dumps(reply).encode() + b"\n")
        proto.flush()


if __name__ == "__main__":
    main()
