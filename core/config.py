"""The one Settings class: nothing else in Assistd reads the environment."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelEndpoint(BaseModel):
    """Where requests for one model name go (an OpenAI-compatible base URL), and what that server
    accepts: real inference servers are stricter than OpenAI in some places and laxer in others."""

    base_url: str | None = None  # None: OPENAI_BASE_URL (for the "*" entry, the catch-all)
    api_key: str | None = None  # None: OPENAI_API_KEY
    context_window: int | None = None
    # the request field that limits the answer: llama.cpp's server reads only "max_tokens", and
    # OpenAI's reasoning models refuse it
    token_limit_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    # the answer's token limit when the run sets none (None: the room reserved for the answer)
    max_output_tokens: int | None = Field(None, ge=1)
    stream_usage: bool = True  # ask for a usage chunk when streaming (stream_options.include_usage)
    # an assistant turn that only called tools is replayed with content null, as OpenAI's spec
    # allows; most other servers refuse null, so by default it goes as ""
    null_content: bool = False
    # a request that timed out may still be generating on the server: a retry only queues behind it
    retry_timeouts: bool = False
    # the model reads images (chat-completions image_url parts); false: each image becomes a
    # text note "[image: name]", since a text-only server refuses image parts
    vision: bool = True


class ProjectRateLimit(BaseModel):
    """One project's limits in ASSISTD_RATE_LIMITS; a field left out takes the global value."""

    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTD_", extra="ignore")

    # storage and broker
    database_url: str = Field(
        "sqlite:///./data/assistd.db", validation_alias=AliasChoices("ASSISTD_DATABASE_URL", "DATABASE_URL")
    )
    # "pgbouncer": database_url is a pooler in transaction mode (PgBouncer, or one that works like
    # it), so no statement stays prepared from one transaction to the next (docs/operations.md)
    database_pooler: Literal["none", "pgbouncer"] = "none"
    # connections of each of a process's two pools (SQLAlchemy's, the run store's): a statement
    # holds one for a round trip, so a few serve hundreds of runs (docs/operations.md, "Sizing")
    database_pool_size: int = Field(10, ge=1)
    redis_url: str | None = Field(None, validation_alias=AliasChoices("ASSISTD_REDIS_URL", "REDIS_URL"))
    redis_namespace: str = "assistd"
    # set by `assistd serve --workers N` for its API processes: the Unix socket of the serving
    # process's queue, event log and rate-limit counters (core/hub.py); never set by hand
    hub: str | None = Field(None, validation_alias=AliasChoices("ASSISTD_HUB"))
    files_dir: str = "./data/files"
    max_file_bytes: int = 512 * 1024 * 1024  # OpenAI's limit
    # S3-compatible object storage for file bytes (distributed mode); unset bucket = files_dir
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    # authentication: "key=project,key2=project2"; a key without "=project" is in project "default"
    api_keys: str | None = None

    # transport: what one connection or request may hold before it is cut off (README "Limits")
    max_request_bytes: int = 16 * 1024 * 1024  # a request body other than an upload (JSON)
    header_timeout_seconds: float = 10.0  # to send a request's line and headers, from their first byte
    max_header_bytes: int = 64 * 1024  # a request's line and headers
    # longer than clients' idle-connection expiry (httpx: 5 s): otherwise the server may close a
    # kept-alive connection just as a client reuses it, and that request fails with a read error
    keep_alive_seconds: int = 75
    max_connections: int = 2048  # open connections; past it, new requests get a 503

    # rate limits per project (core/quotas.py): requests and model tokens per window; 0 is off.
    # Requests count every authenticated /v1 request; tokens, what the workers' model calls
    # used, and a project past them cannot create runs or responses until its window ends.
    rate_limit_rpm: int = Field(0, ge=0)
    rate_limit_tpm: int = Field(0, ge=0)
    # JSON object: project -> {"rpm": N, "tpm": N}, overriding the two above for that project
    rate_limits: dict[str, ProjectRateLimit] = {}
    # the window both limits count in; other than 60 s only for tests and odd deployments
    rate_limit_window_seconds: float = Field(60.0, gt=0)

    # models: the default endpoint is the one the openai client itself reads
    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("OPENAI_BASE_URL"))
    openai_api_key: str | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    # JSON object: model name -> ModelEndpoint's fields; the key "*" sets the options of every
    # other model (its base_url and api_key default to OPENAI_BASE_URL / OPENAI_API_KEY)
    model_endpoints: dict[str, ModelEndpoint] = {}
    context_window: int = 128_000
    # room kept for the answer when a run sets no max_completion_tokens (at most a quarter of the
    # context window): the prompt is cut to leave it, and it is sent as the answer's token limit
    completion_reserve_tokens: int = 4096
    # model names that label metrics, beside the keys of model_endpoints; every other name is
    # counted as "other" (a model name is the caller's text: it must not grow /metrics)
    metrics_models: str = ""
    model_timeout_seconds: float = 180.0
    model_max_retries: int = 2
    # the model client's transport: "aiohttp" (the default), whose cost per request stays flat
    # with hundreds of requests in flight, or "httpx" (the SDK's own), whose connection pool scans
    # every connection per request (about 1.3x the worker's CPU per run with a 1 s model)
    model_http: str = "aiohttp"

    # runs
    run_lease_seconds: float = 30.0
    run_timeout_seconds: int = 600
    requires_action_expiry_seconds: int = 600
    requeue_after_seconds: float = 30.0
    sweep_interval_seconds: float = 2.0
    cancel_check_seconds: float = 0.5
    poll_after_ms: int = 25
    # a poll helper's retrieve of a run still going (X-Stainless-Poll-Helper) is answered when
    # the run ends or needs the client, waiting at most this long; 0 answers at once
    poll_wait_seconds: float = 10.0

    # retention (workers/retention.py): expired files and vector stores are always deleted; threads,
    # responses and conversations unused for this many days only when set (unset: kept for ever)
    retention_interval_seconds: float = 300.0
    retention_thread_days: int | None = Field(None, ge=1)
    retention_response_days: int | None = Field(None, ge=1)
    retention_conversation_days: int | None = Field(None, ge=1)

    # workers
    worker_concurrency: int = 500
    worker_threads: int = 4
    worker_poll_ms: int = 1000

    # code interpreter: Python in throwaway Docker containers, one session per thread
    sandbox_image: str = "assistd-sandbox:1"
    sandbox_runtime: str | None = None  # e.g. "runsc" (gVisor) where installed
    sandbox_timeout_seconds: float = 60.0  # wall time of one execution
    sandbox_memory_bytes: int = 1 << 30
    sandbox_cpus: float = 1.0
    sandbox_pids: int = 128
    sandbox_disk_bytes: int = 256 << 20  # /mnt/data
    sandbox_output_bytes: int = 20_000  # stdout and stderr kept per execution
    sandbox_idle_seconds: float = 1200.0  # OpenAI's sessions end after 20 idle minutes
    sandbox_pool_size: int = 2  # started containers waiting for new sessions, per worker

    # code interpreter caps: live sessions (each a container of up to sandbox_memory_bytes and
    # sandbox_cpus) in the deployment, and per project; past either, the model is told so
    sandbox_max_sessions: int = 32
    sandbox_max_project_sessions: int = 8
    # the largest `memory_limit` a container (POST /v1/containers) may ask for: a container's
    # session gets that much memory on the workers' Docker engine, so the operator sets the ceiling
    container_max_memory: Literal["1g", "4g", "16g", "64g"] = "1g"

    # retrieval: vector stores and the file_search tool
    # the embedding model of new vector stores ("all-MiniLM-L6-v2" runs locally on the CPU); a store
    # keeps the model it was created with, so changing this never mixes vectors in one store
    embeddings_model: str = "all-MiniLM-L6-v2"
    # an OpenAI-compatible /v1 endpoint for a non-local model (default: OPENAI_BASE_URL / OPENAI_API_KEY)
    embeddings_base_url: str | None = None
    embeddings_api_key: str | None = None
    embeddings_batch_size: int = 64  # chunks per embedding call while ingesting
    ingest_concurrency: int = 2  # files ingested at once per worker process
    ingest_lease_seconds: float = 60.0  # renewed while a file is ingested; once it lapses, it is re-sent
    ingest_requeue_after_seconds: float = 30.0  # an unclaimed in_progress file is re-sent after this
    ingest_max_attempts: int = 3  # then the file fails with server_error
    # files of one store claimed, embedded and written together (external embedding models only:
    # the local model takes one file at a time, its embedding costs far more than the bookkeeping)
    ingest_group_files: int = 64
    ingest_nice: int = (
        10  # nice value of ingestion's threads (Linux, not on SQLite): searches and runs go first
    )
    search_cache_stores: int = 32  # vector store indexes kept in memory per process
    # the longest search query: the search endpoint answers 400 past it, the file_search tool
    # searches the first this many characters and tells the model (OpenAI documents no limit)
    search_query_max_chars: int = 4096

    # metrics and logs
    log_level: str = "INFO"
    # "json": one JSON object a line, with the request's or the run's ids (core/logs.py)
    log_format: Literal["text", "json"] = "text"
    access_log: bool = True  # one line per HTTP request (logger assistd.access, at INFO)
    # prometheus_client's own variable: a directory shared by the processes of one host
    prometheus_multiproc_dir: str | None = Field(
        None, validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR")
    )
    worker_metrics_port: int = 9191  # /metrics, /healthz, /readyz of a worker; 0 turns it off
    # a Bearer token that /metrics of the API and the workers then require; unset: /metrics is open
    metrics_token: str | None = None

    # the browser playground at /playground (static files; it only calls /v1 with the user's key)
    playground: bool = True

    @field_validator("model_endpoints", "rate_limits", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    def keys(self) -> dict[str, str]:
        """API key -> project, parsed from `api_keys`."""
        out: dict[str, str] = {}
        for item in (self.api_keys or "").split(","):
            item = item.strip()
            if not item:
                continue
            key, _, project = item.partition("=")
            out[key.strip()] = project.strip() or "default"
        return out


@lru_cache
def get_settings() -> Settings:
    return Settings()
