"""`assistd`: serve (embedded, one process), api, worker, migrate; runs and projects (assistd/admin.py)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from importlib.metadata import version
from typing import Any

from assistd import admin
from core import logs
from core.config import Settings, get_settings
from core.db import check_migrated, migrate
from core.errors import NotMigrated

log = logging.getLogger("assistd")
VERSION = version("assistd")
# uvicorn's exit status when the server never started (its STARTUP_FAILURE)
STARTUP_FAILURE = 3


def _bind(args: argparse.Namespace) -> socket.socket:
    """The API's socket, bound before anything else starts. Left to uvicorn, a taken port showed
    only after migrating and starting the worker, as a log line, a traceback and seconds of
    shutting down again."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        sys.exit(f"assistd: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    return sock


def _listen(sock: socket.socket, args: argparse.Namespace, settings: Settings, mode: str) -> None:
    """Serve the API on the bound socket until interrupted."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from api.main import create_app
    from assistd.protocol import protocol

    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        access_log=False,  # api/observe.py writes the access log (ASSISTD_ACCESS_LOG)
        log_level="warning",
        # uvicorn's own handlers write text: in JSON, its lines go to the root logger's instead
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        http=protocol(settings.header_timeout_seconds, settings.max_header_bytes),
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_connections,
    )
    server = uvicorn.Server(config)
    host = f"[{args.host}]" if sock.family == socket.AF_INET6 else args.host
    log.info("assistd %s (%s mode) listening on http://%s:%d", VERSION, mode, host, sock.getsockname()[1])
    server.run(sockets=[sock])
    if not server.started:  # the app's start-up failed; uvicorn has logged why
        sys.exit(STARTUP_FAILURE)


def _serve(args: argparse.Namespace) -> int:
    """Embedded mode: migrate, then API and worker in this one process; with `--workers N`, the
    worker here and N API processes that reach its queue and event log through core/hub.py."""
    if args.from_fd is not None:
        return _serve_api(args)
    sock = _bind(args)
    settings = get_settings()
    migrate(settings.database_url)
    if not settings.keys():
        log.warning("ASSISTD_API_KEYS is not set: accepting any API key as project 'default'")
    made = None
    if args.workers > 1:
        from assistd import processes

        made = processes.shared_metrics_dir()  # the worker's metrics are summed with the API's
        get_settings.cache_clear()
        settings = get_settings()
    from dramatiq.asyncio import get_event_loop_thread

    from workers.main import start_worker
    from workers.middleware import runner

    worker = start_worker(settings, serve_metrics=False)
    # whatever this process left unfinished last time is picked up again now
    loop = get_event_loop_thread()
    assert loop is not None  # started by the broker's AsyncIO middleware when the worker booted
    loop.run_coroutine(runner().sweep(orphans_now=True))
    try:
        if args.workers > 1:
            return _serve_processes(args, sock, settings, loop)
        # uvicorn re-raises the stop signal once it has shut down, under the handler it found:
        # with the default one, SIGTERM killed the process there, before the worker below could
        # hand its runs back and remove its sandbox containers.
        signal.signal(signal.SIGTERM, lambda *_: None)
        _listen(sock, args, settings, "embedded")
    finally:
        worker.stop()
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def _serve_processes(args: argparse.Namespace, sock: socket.socket, settings: Settings, loop: Any) -> int:
    """`serve --workers N`: N API processes on the socket, and the hub they reach this process's
    queue, event log and rate-limit counters through (on the worker's event loop)."""
    from assistd import processes
    from assistd.hub import Hub
    from core.broker import broker
    from core.events import event_log
    from core.redis_counters import counters

    folder = tempfile.mkdtemp(prefix="assistd-hub-")
    path = os.path.join(folder, "hub.sock")
    server = loop.run_coroutine(Hub(broker, event_log(), counters(settings)).serve(path))
    env = os.environ | {"ASSISTD_HUB": path}
    command = ["serve", "--host", args.host, "--port", str(args.port)]
    try:
        return processes.supervise(args.workers, lambda: processes.spawn(command, sock, env))
    finally:
        sock.close()
        loop.loop.call_soon_threadsafe(server.close)
        shutil.rmtree(folder, ignore_errors=True)


def _serve_api(args: argparse.Namespace) -> int:
    """One API process of `serve --workers N`, on the socket it was handed."""
    from assistd import processes

    settings = get_settings()
    if not settings.hub:
        sys.exit("assistd: --from-fd is for the API processes `assistd serve --workers N` starts")
    sock = socket.socket(fileno=args.from_fd)
    processes.exit_with_parent()
    _listen(sock, args, settings, "embedded")
    return 0


def _require_distributed(need_keys: bool) -> None:
    settings = get_settings()
    if not settings.redis_url:
        sys.exit("assistd: REDIS_URL is required in distributed mode (use `assistd serve` for one process)")
    if need_keys and not settings.keys():
        sys.exit(
            "assistd: ASSISTD_API_KEYS is required in distributed mode (format: key=project,key2=project2)"
        )
    try:
        check_migrated(settings.database_url)
    except NotMigrated as exc:
        sys.exit(f"assistd: {exc}")


def _api(args: argparse.Namespace) -> int:
    """Distributed mode: the HTTP API only; runs go to the workers through Redis."""
    _require_distributed(need_keys=True)
    sock = _bind(args)
    if args.workers <= 1:
        _listen(sock, args, get_settings(), "distributed")
        return 0
    from assistd import processes

    def serve() -> None:
        get_settings.cache_clear()  # it reads PROMETHEUS_MULTIPROC_DIR, set for the children
        _listen(sock, args, get_settings(), "distributed")

    return processes.run(args.workers, sock, serve)


def _worker(args: argparse.Namespace) -> int:
    """Distributed mode: execute runs from the Redis queue until SIGTERM/SIGINT."""
    _require_distributed(need_keys=False)
    from workers.main import start_worker

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = start_worker(get_settings())
    log.info("assistd %s worker started", VERSION)
    # Wake up now and then: a signal the kernel hands to another thread does not interrupt an
    # untimed wait, and Python runs its handler only once the main thread runs again (seen: a
    # SIGTERM handled 15 s late, when a second one came).
    while not stop.wait(0.5):
        pass
    log.info("worker stopping: handing back runs in flight")
    worker.stop()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Apply the database migrations."""
    migrate(get_settings().database_url)
    print("assistd: database is up to date")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assistd", description="A self-hosted OpenAI Assistants API server.")
    p.add_argument("--version", action="version", version=f"assistd {VERSION}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, helptext, listens in (
        ("serve", _serve, "embedded mode: API, worker, SQLite and queue in one process", True),
        ("api", _api, "distributed mode: the HTTP API (needs REDIS_URL, DATABASE_URL)", True),
        ("worker", _worker, "distributed mode: a run worker (needs REDIS_URL, DATABASE_URL)", False),
        ("migrate", _migrate, "apply database migrations", False),
    ):
        cmd = sub.add_parser(name, help=helptext, description=helptext)
        if listens:
            cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
            cmd.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
        if name in ("api", "serve"):
            cmd.add_argument(
                "--workers",
                type=int,
                default=1,
                help="API processes sharing the port (default 1; see docs/operations.md for sizing)",
            )
        if name == "serve":  # how `serve --workers N` hands its socket to its API processes
            cmd.add_argument("--from-fd", type=int, default=None, help=argparse.SUPPRESS)
        cmd.set_defaults(fn=fn)
    admin.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    for noisy in ("alembic", "httpx", "httpx2", "dramatiq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
