"""Prometheus metrics of a worker, and its small HTTP server: /metrics, /healthz, /readyz.

Each worker process serves its own port (`ASSISTD_WORKER_METRICS_PORT`); Prometheus scrapes
every process. Several processes on one host can instead share PROMETHEUS_MULTIPROC_DIR and
one port: the first process to bind it serves the sum, the others skip serving.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram

from core.config import Settings
from core.metrics import allowed, render

log = logging.getLogger("assistd.worker")

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RUNS_STARTED = Counter("assistd_runs_started_total", "Model rounds started (claims)", ["model"])
RUNS_FINISHED = Counter(
    "assistd_runs_finished_total", "Rounds ended, by the status the run moved to", ["model", "status"]
)
RUN_DURATION = Histogram(
    "assistd_run_duration_seconds", "Run creation to its end", ["model"], buckets=SECONDS
)
QUEUE_WAIT = Histogram(
    "assistd_run_queue_wait_seconds", "Run enqueued to claimed by a worker", buckets=SECONDS
)
MODEL_LATENCY = Histogram(
    "assistd_model_request_duration_seconds", "One model call", ["model"], buckets=SECONDS
)
MODEL_ERRORS = Counter(
    "assistd_model_errors_total", "Model calls that failed after retries", ["model", "code"]
)
TOKENS = Counter("assistd_tokens_total", "Tokens reported by the model endpoint", ["model", "kind"])
# projects are the operator's (ASSISTD_API_KEYS), so they may label series
PROJECT_TOKENS = Counter(
    "assistd_project_tokens_total", "Tokens reported by the model endpoint, by project", ["project", "kind"]
)
TOOL_CALLS = Counter("assistd_tool_calls_total", "Tool calls made by models", ["type", "outcome"])
# the kinds workers/retention.py deletes, each a series from the start (0 until it deletes one)
RETENTION_KINDS = (
    "files",
    "vector_stores",
    "uploads",
    "container_files",
    "threads",
    "responses",
    "conversations",
)
RETENTION_DELETED = Counter(
    "assistd_retention_deleted_total",
    "Objects deleted by retention (expiry, or the operator's policy)",
    ["kind"],
)
for _kind in RETENTION_KINDS:
    RETENTION_DELETED.labels(_kind)
IN_FLIGHT = Gauge(
    "assistd_worker_runs_in_flight", "Runs this worker is executing", multiprocess_mode="livesum"
)

# model names that may label a series: the operator's, never the callers' (see `model`)
_MODELS: frozenset[str] = frozenset()


def configure(settings: Settings) -> None:
    global _MODELS
    listed = {m.strip() for m in settings.metrics_models.split(",") if m.strip()}
    _MODELS = frozenset(settings.model_endpoints.keys() - {"*"} | listed)


def model(name: str) -> str:
    """The label of a model name: a run's model is whatever its caller sent, so only the names the
    operator configured are labels of their own, and every other name counts as "other"."""
    return name if name in _MODELS else "other"


def serve(settings: Settings, ready: Any) -> ThreadingHTTPServer | None:
    """Start the metrics/health server on a daemon thread; None if turned off or the port is taken."""
    if not settings.worker_metrics_port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            locked = not allowed(self.headers.get("authorization"), settings.metrics_token)
            if self.path == "/metrics" and locked:
                self._answer(401, b'{"error": "a valid metrics token is required"}', "application/json")
            elif self.path == "/metrics":
                self._answer(200, render(settings.prometheus_multiproc_dir), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._answer(200, b'{"status": "ok"}', "application/json")
            elif self.path == "/readyz":
                problem = ready()
                body = b'{"status": "ready"}' if problem is None else f'{{"status": "{problem}"}}'.encode()
                self._answer(200 if problem is None else 503, body, "application/json")
            else:
                self._answer(404, b"{}", "application/json")

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer(("0.0.0.0", settings.worker_metrics_port), Handler)
    except OSError as exc:
        log.warning("metrics port %d not served by this process: %s", settings.worker_metrics_port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="assistd-metrics", daemon=True).start()
    return server


MESSAGES = Counter(
    "assistd_dramatiq_messages_total", "Queue messages processed", ["queue", "actor", "outcome"]
)
MESSAGE_SECONDS = Histogram(
    "assistd_dramatiq_message_duration_seconds",
    "Time an actor took on a message",
    ["queue", "actor"],
    buckets=SECONDS,
)
BACKLOG = Gauge(
    "assistd_dramatiq_queue_backlog",
    "Messages waiting in the queue, not yet fetched",
    ["queue"],
    multiprocess_mode="max",
)
