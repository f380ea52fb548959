"""Real processes shared by tests and benchmarks: the scripted model, `assistd serve`, api + workers."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("ASSISTD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("ASSISTD_TEST_PG_URL", "postgresql://assistd:assistd@127.0.0.1:5432/assistd")
# PgBouncer in transaction pooling mode in front of PG_URL's server, passing any database name on
PGBOUNCER_URL = os.environ.get(
    "ASSISTD_TEST_PGBOUNCER_URL", "postgresql://assistd:assistd@127.0.0.1:6432/assistd"
)
KEY_A, KEY_B = "sk-test-project-a", "sk-test-project-b"
API_KEYS = f"{KEY_A}=proj_a,{KEY_B}=proj_b"


class ServiceMissing(RuntimeError):
    """Redis, PostgreSQL or PgBouncer is not reachable."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTD_", "OPENAI_"))}
    full_env.update(env)
    with open(log, "ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=full_env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)


def children(pid: int) -> set[int]:
    """The processes `pid` started (`api --workers N`'s and `serve --workers N`'s API processes)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class ScriptedModel:
    """Handle on the scripted model process: its URL, what it received, scripts to queue."""

    def __init__(self, url: str) -> None:
        self.url = url

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        got = httpx.get(f"{self.url}/_requests", timeout=10).json()
        return [r for r in got if model is None or r["body"].get("model") == model]

    def script(self, key: str, responses: list[dict[str, Any]]) -> str:
        httpx.post(f"{self.url}/_script", json={"key": key, "responses": responses}, timeout=10)
        return f"queue:{key}"


def start_model(tmp: Path, latency_ms: float = 0) -> tuple[ScriptedModel, subprocess.Popen[bytes]]:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "tests.scripted_model",
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
    ]
    proc = spawn(args, {}, tmp / "model.log")
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return ScriptedModel(f"http://127.0.0.1:{port}"), proc


def redis_available(url: str = REDIS_URL) -> bool:
    import redis

    from core.redis_client import sync_client  # reads redis+sentinel:// URLs too

    client = sync_client(url, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def unix_redis(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A Redis of its own listening only on a Unix socket in `tmp` (no TCP port); its URL."""
    import shutil

    if shutil.which("redis-server") is None:
        raise ServiceMissing("redis-server")
    path = tmp / "redis.sock"
    args = ["redis-server", "--port", "0", "--unixsocket", str(path), "--save", "", "--appendonly", "no"]
    proc = spawn(args, {}, tmp / "redis-unix.log")
    url = f"unix://{path}"
    deadline = time.time() + 10
    while not (path.exists() and redis_available(url)):
        if time.time() > deadline or proc.poll() is not None:
            stop([proc])
            raise ServiceMissing("Redis on a Unix socket")
        time.sleep(0.05)
    return url, proc


def over_unix_socket(url: str) -> str:
    """The same PostgreSQL database reached through the server's Unix socket instead of TCP."""
    import psycopg

    with psycopg.connect(PG_URL, connect_timeout=3) as c:
        row = c.execute("SHOW unix_socket_directories").fetchone()
    directory = str(row[0] if row else "").split(",")[0].strip()
    if not directory:
        raise ServiceMissing("PostgreSQL's Unix socket")
    head, name = url.rsplit("/", 1)
    credentials = head.split("//", 1)[1].split("@", 1)[0]
    return f"postgresql://{credentials}@/{name}?host={directory}"


_created: list[str] = []  # this process's test databases, dropped when it exits


def fresh_pg_database() -> str:
    """A new empty PostgreSQL database for one test session; its URL. It is dropped when this
    process exits (left behind, a few hundred test runs had filled 6 GB)."""
    import psycopg

    name = "assistd_test_" + secrets.token_hex(4)
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise ServiceMissing("PostgreSQL") from exc
    if not _created:
        atexit.register(_drop_created)
    _created.append(name)
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def _drop_created() -> None:
    import psycopg

    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as c:
            for name in _created:  # FORCE: a server a test left running still holds connections
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error as exc:
        print(f"tests: could not drop the test databases {', '.join(_created)}: {exc}", file=sys.stderr)


def through_pgbouncer(url: str) -> str:
    """The database of `url` reached through PgBouncer instead."""
    import psycopg

    script = ROOT / ".ci" / "pgbouncer.sh"
    for attempt in range(2):
        try:
            with psycopg.connect(PGBOUNCER_URL, connect_timeout=3) as c:
                c.execute("SELECT 1")
            break
        except psycopg.OperationalError as exc:
            # Debian's PgBouncer 1.18 can die on a cancel request (its issue #801): started
            # again where the script that starts it is at hand (it does nothing if it runs)
            if attempt or not script.exists() or os.geteuid() != 0:
                raise ServiceMissing("PgBouncer") from exc
            subprocess.run(["bash", str(script)], cwd=ROOT, capture_output=True, timeout=120)
    return PGBOUNCER_URL.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1]


SERVERS: list[Server] = []


class Server:
    def __init__(
        self, mode: str, url: str, env: dict[str, str], procs: list[subprocess.Popen[bytes]]
    ) -> None:
        self.mode, self.url, self.env, self.procs = mode, url, env, procs
        self.clients: list[OpenAI] = []
        self.worker_ports: list[int] = []  # each worker's /metrics, /healthz, /readyz
        SERVERS.append(self)

    def client(self, key: str = KEY_A, **kw: Any) -> OpenAI:
        client = OpenAI(base_url=f"{self.url}/v1", api_key=key, **kw)
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        while self.clients:
            self.clients.pop().close()


# Of Redis keys and sandbox containers: tests remove theirs at the end. The pid keeps two test
# sessions on one machine from removing each other's sandboxes.
TEST_NAMESPACE = f"assistd-test-{os.getpid()}-"


def _left_behind(namespace: str) -> bool:
    """A namespace of this test session's, or of one that is no longer running."""
    if namespace.startswith(TEST_NAMESPACE):
        return True
    parts = namespace.split("-")
    if namespace.startswith("assistd-test-") and len(parts) > 2 and parts[2].isdigit():
        return not Path(f"/proc/{parts[2]}").exists()
    return False


def remove_test_sandboxes() -> None:
    """Remove the code interpreter containers test servers left (sessions outlive their workers)."""
    try:
        listed = subprocess.run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                "label=assistd.sandbox=1",
                "--format",
                '{{.ID}} {{.Label "assistd.namespace"}}',
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    ids = [
        line.split()[0]
        for line in listed.stdout.splitlines()
        if len(line.split()) == 2 and _left_behind(line.split()[1])
    ]
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)


# An endpoint like a small llama.cpp server: a 4,096-token window, and "max_tokens" (the one
# token limit it reads). tests/contract/test_inference_quirks.py runs against it.
SMALL_MODEL = "echo@small"
# An endpoint that reads no images (ModelEndpoint.vision false), like most llama.cpp models
TEXT_ONLY_MODEL = "echo@text-only"


def base_env(model: ScriptedModel) -> dict[str, str]:
    small = {"base_url": f"{model.url}/v1", "context_window": 4096, "token_limit_field": "max_tokens"}
    return {
        "ASSISTD_MODEL_ENDPOINTS": json.dumps(
            {SMALL_MODEL: small, TEXT_ONLY_MODEL: {"base_url": f"{model.url}/v1", "vision": False}}
        ),
        "ASSISTD_METRICS_MODELS": "echo",
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "OPENAI_API_KEY": "sk-scripted",
        "ASSISTD_API_KEYS": API_KEYS,
        "ASSISTD_RUN_LEASE_SECONDS": "3",
        "ASSISTD_SWEEP_INTERVAL_SECONDS": "0.5",
        "ASSISTD_REQUEUE_AFTER_SECONDS": "3",
        "ASSISTD_CANCEL_CHECK_SECONDS": "0.2",
        "ASSISTD_MODEL_MAX_RETRIES": "1",
        "ASSISTD_POLL_AFTER_MS": "20",
        "ASSISTD_REQUIRES_ACTION_EXPIRY_SECONDS": "6",
        "ASSISTD_WORKER_METRICS_PORT": "0",
        # no warm sandbox containers in every test server: code interpreter tests pay a cold start
        "ASSISTD_SANDBOX_POOL_SIZE": "0",
        "ASSISTD_SANDBOX_TIMEOUT_SECONDS": "20",
        # one project runs every contract test on a session's server, and each response with an
        # `auto` container outside a chain starts a session (they end after 20 idle minutes)
        "ASSISTD_SANDBOX_MAX_PROJECT_SESSIONS": "48",
        "ASSISTD_SANDBOX_MAX_SESSIONS": "64",
        # no retention passes: tests age rows to see them expired, and a pass could delete them
        # between the aging and the check (tests/workers/test_retention.py turns it on)
        "ASSISTD_RETENTION_INTERVAL_SECONDS": "0",
    }


def start_embedded(
    model: ScriptedModel, tmp: Path, extra: dict[str, str] | None = None, api_workers: int = 1
) -> Server:
    port = free_port()
    env = base_env(model) | {
        "ASSISTD_DATABASE_URL": f"sqlite:///{tmp}/assistd.db",
        "ASSISTD_FILES_DIR": str(tmp),
        "ASSISTD_REDIS_NAMESPACE": TEST_NAMESPACE + secrets.token_hex(4),
    }
    env |= extra or {}
    command = [sys.executable, "-m", "assistd", "serve", "--port", str(port)]
    command += ["--workers", str(api_workers)] if api_workers != 1 else []
    proc = spawn(command, env, tmp / "serve.log")
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return Server("embedded", f"http://127.0.0.1:{port}", env, [proc])


def start_distributed(
    model: ScriptedModel,
    tmp: Path,
    workers: int = 2,
    extra: dict[str, str] | None = None,
    redis_url: str = REDIS_URL,
    api_workers: int = 1,
    pgbouncer: bool = False,
    database_url: str | None = None,
) -> Server:
    """API + `workers` workers on a fresh database (or on `database_url`, the caller's), reached
    through PgBouncer if `pgbouncer` (migrations included)."""
    if not redis_available(redis_url):
        raise ServiceMissing("Redis")
    database: dict[str, str] = {"ASSISTD_DATABASE_URL": database_url or fresh_pg_database()}
    if pgbouncer:
        database = {
            "ASSISTD_DATABASE_URL": through_pgbouncer(database["ASSISTD_DATABASE_URL"]),
            "ASSISTD_DATABASE_POOLER": "pgbouncer",
        }
    env = (
        base_env(model)
        | database
        | {
            "ASSISTD_REDIS_URL": redis_url,
            "ASSISTD_REDIS_NAMESPACE": TEST_NAMESPACE + secrets.token_hex(4),
        }
        | (extra or {})
    )
    subprocess.run(
        [sys.executable, "-m", "assistd", "migrate"],
        env=os.environ | env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    port = free_port()
    api = [sys.executable, "-m", "assistd", "api", "--port", str(port), "--workers", str(api_workers)]
    procs = [spawn(api, env, tmp / "api.log")]
    ports = [free_port() for _ in range(workers)]
    procs += [
        spawn(
            [sys.executable, "-m", "assistd", "worker"],
            env | {"ASSISTD_WORKER_METRICS_PORT": str(port)},
            tmp / f"worker{i}.log",
        )
        for i, port in enumerate(ports)
    ]
    wait_http(f"http://127.0.0.1:{port}/healthz", procs[0])
    server = Server("distributed", f"http://127.0.0.1:{port}", env, procs)
    server.worker_ports = ports
    return server


def start_s3(tmp: Path) -> tuple[dict[str, str], subprocess.Popen[bytes]]:
    """moto's S3-compatible server as a real process, with a bucket; the settings that point at it."""
    import boto3

    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], {}, tmp / "s3.log"
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/moto-api/", proc)
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket="assistd-files")
    return {
        "ASSISTD_S3_BUCKET": "assistd-files",
        "ASSISTD_S3_ENDPOINT_URL": url,
        "ASSISTD_S3_ACCESS_KEY_ID": "test",
        "ASSISTD_S3_SECRET_ACCESS_KEY": "test",
    }, proc
