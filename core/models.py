"""Tables. Each stores data; one `to_openai()` per table maps it to the wire type.

Timestamps are floats here (sub-second, for measuring) and integer seconds on the wire.
`seq` is a strictly increasing nanosecond counter that orders lists.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from openai.types import FileObject as WireFile
from openai.types import VectorStore as WireVectorStore
from openai.types.beta import Assistant as WireAssistant
from openai.types.beta import Thread as WireThread
from openai.types.beta.threads import Message as WireMessage
from openai.types.beta.threads import Run as WireRun
from openai.types.beta.threads.runs import RunStep as WireRunStep
from openai.types.vector_stores import VectorStoreFile as WireVectorStoreFile
from openai.types.vector_stores import VectorStoreFileBatch as WireVectorStoreFileBatch
from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, String, Table, Text, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import new_id, now, seq

JSONType = JSON().with_variant(JSONB(), "postgresql")

ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")


def _json(**kw: Any) -> Any:
    return Field(default=None, sa_column=Column(JSONType, nullable=True, **kw))


def _meta() -> Any:
    # `metadata` is taken by SQLAlchemy; the column keeps the wire name.
    return Field(default=None, sa_column=Column("metadata", JSONType, nullable=True))


def _seq() -> Any:
    return Field(default_factory=seq, sa_column_kwargs={"nullable": False}, sa_type=BigInteger)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model (SQLModel does not declare `__table__` for type checkers)."""
    table = sa_inspect(model).local_table
    assert isinstance(table, Table), f"{model.__name__} is not a table model"
    return table


def ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def wire_of(table: Any, values: Any) -> Any:
    """The wire object for a row held as a mapping (a Core result or a dict of column values)."""
    return table.to_openai(
        SimpleNamespace(**{("meta" if k == "metadata" else k): v for k, v in values.items()})
    )


def known(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Token usage for the wire: null when the model endpoint never reported the counts (stored
    as None values, so the run still shows that a round was recorded)."""
    return usage if usage and usage.get("prompt_tokens") is not None else None


def new_row(prefix: str, **values: Any) -> dict[str, Any]:
    """Column values for a Core insert on a hot path (no ORM object): id, seq and created_at filled."""
    out = {"id": new_id(prefix), "seq": seq(), "created_at": now(), "metadata": None} | values
    if "meta" in out:
        out["metadata"] = out.pop("meta")
    return out


class Assistant(SQLModel, table=True):
    __tablename__ = "assistants"
    __table_args__ = (Index("ix_assistants_project_seq", "project", "seq"),)

    id: str = Field(default_factory=lambda: new_id("asst"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = _json()
    tool_resources: dict[str, Any] | None = _json()
    meta: dict[str, str] | None = _meta()
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = _json()
    reasoning_effort: str | None = None

    def to_openai(self) -> WireAssistant:
        return WireAssistant.model_validate(
            {
                "id": self.id,
                "object": "assistant",
                "created_at": ts(self.created_at),
                "model": self.model,
                "name": self.name,
                "description": self.description,
                "instructions": self.instructions,
                "tools": self.tools or [],
                "tool_resources": self.tool_resources or {},
                "metadata": self.meta or {},
                "temperature": self.temperature,
                "top_p": self.top_p,
                "response_format": self.response_format or "auto",
            }
        )


class Thread(SQLModel, table=True):
    __tablename__ = "threads"
    __table_args__ = (Index("ix_threads_project_seq", "project", "seq"),)  # a project's threads (0010)

    id: str = Field(default_factory=lambda: new_id("thread"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    tool_resources: dict[str, Any] | None = _json()
    meta: dict[str, str] | None = _meta()

    def to_openai(self) -> WireThread:
        return WireThread.model_validate(
            {
                "id": self.id,
                "object": "thread",
                "created_at": ts(self.created_at),
                "tool_resources": self.tool_resources or {},
                "metadata": self.meta or {},
            }
        )


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_thread_seq", "thread_id", "seq"),)

    id: str = Field(default_factory=lambda: new_id("msg"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    thread_id: str = Field(max_length=64)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    role: str = Field(max_length=16)
    content: list[dict[str, Any]] | None = _json()
    attachments: list[dict[str, Any]] | None = _json()
    meta: dict[str, str] | None = _meta()
    assistant_id: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64, index=True)
    status: str = Field(default="completed", max_length=16)
    completed_at: float | None = None
    incomplete_at: float | None = None
    incomplete_details: dict[str, Any] | None = _json()

    def to_openai(self) -> WireMessage:
        return WireMessage.model_validate(
            {
                "id": self.id,
                "object": "thread.message",
                "created_at": ts(self.created_at),
                "thread_id": self.thread_id,
                "role": self.role,
                "content": self.content or [],
                "attachments": self.attachments or [],
                "metadata": self.meta or {},
                "assistant_id": self.assistant_id,
                "run_id": self.run_id,
                "status": self.status,
                "completed_at": ts(self.completed_at),
                "incomplete_at": ts(self.incomplete_at),
                "incomplete_details": self.incomplete_details,
            }
        )


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_seq", "thread_id", "seq"),
        Index("ix_runs_project_seq", "project", "seq"),  # a project's runs across threads (0009)
        Index("ix_runs_status", "status"),
        # One active run per thread, enforced by the database (no check-then-insert race).
        Index(
            "ux_runs_one_active",
            "thread_id",
            unique=True,
            sqlite_where=text("status IN ('queued','in_progress','requires_action','cancelling')"),
            postgresql_where=text("status IN ('queued','in_progress','requires_action','cancelling')"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id("run"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    thread_id: str = Field(max_length=64)
    assistant_id: str = Field(max_length=64)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    status: str = Field(default="queued", sa_column_kwargs={"nullable": False}, sa_type=String(16))
    model: str
    instructions: str = ""
    tools: list[dict[str, Any]] | None = _json()
    tool_choice: Any = _json()
    tool_resources: dict[str, Any] | None = _json()
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = _json()
    parallel_tool_calls: bool = True
    truncation_strategy: dict[str, Any] | None = _json()
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None
    meta: dict[str, str] | None = _meta()
    usage: dict[str, int] | None = _json()
    last_error: dict[str, str] | None = _json()
    incomplete_details: dict[str, Any] | None = _json()
    required_action: dict[str, Any] | None = _json()
    started_at: float | None = None
    completed_at: float | None = None
    cancelled_at: float | None = None
    failed_at: float | None = None
    expires_at: float | None = None
    # execution bookkeeping, never on the wire
    owner: str | None = Field(default=None, max_length=128)
    lease_until: float | None = None
    enqueued_at: float | None = None
    attempts: int = 0
    stream: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})

    def to_openai(self) -> WireRun:
        return WireRun.model_validate(
            {
                "id": self.id,
                "object": "thread.run",
                "created_at": ts(self.created_at),
                "thread_id": self.thread_id,
                "assistant_id": self.assistant_id,
                "status": self.status,
                "model": self.model,
                "instructions": self.instructions,
                "tools": self.tools or [],
                "tool_choice": self.tool_choice or "auto",
                "temperature": self.temperature,
                "top_p": self.top_p,
                "response_format": self.response_format or "auto",
                "parallel_tool_calls": self.parallel_tool_calls,
                "truncation_strategy": self.truncation_strategy or {"type": "auto", "last_messages": None},
                "max_prompt_tokens": self.max_prompt_tokens,
                "max_completion_tokens": self.max_completion_tokens,
                "metadata": self.meta or {},
                "usage": known(self.usage),
                "last_error": self.last_error,
                "incomplete_details": self.incomplete_details,
                "required_action": self.required_action,
                "started_at": ts(self.started_at),
                "completed_at": ts(self.completed_at),
                "cancelled_at": ts(self.cancelled_at),
                "failed_at": ts(self.failed_at),
                "expires_at": ts(self.expires_at) if self.status in ACTIVE_RUN_STATUSES else None,
            }
        )


class RunStep(SQLModel, table=True):
    __tablename__ = "run_steps"
    __table_args__ = (Index("ix_run_steps_run_seq", "run_id", "seq"),)

    id: str = Field(default_factory=lambda: new_id("step"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    run_id: str = Field(max_length=64)
    thread_id: str = Field(max_length=64)
    assistant_id: str = Field(max_length=64)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    type: str = Field(max_length=32)
    status: str = Field(default="in_progress", max_length=16)
    step_details: dict[str, Any] | None = _json()
    usage: dict[str, int] | None = _json()
    last_error: dict[str, str] | None = _json()
    meta: dict[str, str] | None = _meta()
    completed_at: float | None = None
    cancelled_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None

    def to_openai(self) -> WireRunStep:
        return WireRunStep.model_validate(
            {
                "id": self.id,
                "object": "thread.run.step",
                "created_at": ts(self.created_at),
                "run_id": self.run_id,
                "thread_id": self.thread_id,
                "assistant_id": self.assistant_id,
                "type": self.type,
                "status": self.status,
                "step_details": self.step_details,
                "usage": known(self.usage),
                "last_error": self.last_error,
                "metadata": self.meta or {},
                "completed_at": ts(self.completed_at),
                "cancelled_at": ts(self.cancelled_at),
                "failed_at": ts(self.failed_at),
                "expired_at": ts(self.expired_at),
            }
        )


# The tables themselves, for SQLAlchemy Core statements on the workers' hot path.
RUNS, MESSAGES, STEPS = table_of(Run), table_of(Message), table_of(RunStep)
THREADS, ASSISTANTS = table_of(Thread), table_of(Assistant)


class File(SQLModel, table=True):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_seq", "project", "seq"),)

    id: str = Field(default_factory=lambda: new_id("file-"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    filename: str
    purpose: str = Field(max_length=32)
    bytes: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(default="processed", max_length=16)
    expires_at: float | None = None
    sha256: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64, index=True)  # written by this run's code

    def to_openai(self) -> WireFile:
        return WireFile.model_validate(
            {
                "id": self.id,
                "object": "file",
                "bytes": self.bytes,
                "created_at": ts(self.created_at),
                "filename": self.filename,
                "purpose": self.purpose,
                "status": self.status,
                "expires_at": ts(self.expires_at),
                "status_details": None,
            }
        )


FILES = table_of(File)


# --- vector stores (file_search) ---

# OpenAI's `auto` chunking strategy, reported as the static sizes it uses.
AUTO_CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
NO_FILES = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}


class VectorStore(SQLModel, table=True):
    """A searchable collection of files. `file_counts` and `usage_bytes` are recounted from
    vector_store_files in every transaction that changes them; `version` grows with every such
    change, so search indexes cached by (id, version) are never stale."""

    __tablename__ = "vector_stores"
    __table_args__ = (Index("ix_vector_stores_project_seq", "project", "seq"),)

    id: str = Field(default_factory=lambda: new_id("vs"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    name: str = ""
    description: str | None = None
    meta: dict[str, str] | None = _meta()
    expires_after: dict[str, Any] | None = _json()
    expires_at: float | None = None
    last_active_at: float = Field(default_factory=now)
    usage_bytes: int = Field(default=0, sa_type=BigInteger)
    file_counts: dict[str, int] | None = _json()
    # the embedding model the store was created with: its vectors never mix with another's
    embedding_model: str = Field(max_length=256)
    embedding_endpoint: str | None = None
    version: int = Field(default=0, sa_type=BigInteger)

    def status(self) -> str:
        if self.expires_at is not None and self.expires_at <= now():
            return "expired"
        return "in_progress" if (self.file_counts or NO_FILES)["in_progress"] else "completed"

    def to_openai(self) -> WireVectorStore:
        return WireVectorStore.model_validate(
            {
                "id": self.id,
                "object": "vector_store",
                "created_at": ts(self.created_at),
                "name": self.name,
                "description": self.description,
                "metadata": self.meta or {},
                "status": self.status(),
                "file_counts": self.file_counts or NO_FILES,
                "usage_bytes": self.usage_bytes,
                "last_active_at": ts(self.last_active_at),
                "expires_after": self.expires_after,
                "expires_at": ts(self.expires_at),
            }
        )


class VectorStoreFile(SQLModel, table=True):
    """A file attached to a vector store; its wire id is the file's id."""

    __tablename__ = "vector_store_files"
    __table_args__ = (
        Index("ix_vector_store_files_store_seq", "vector_store_id", "seq"),
        Index("ix_vector_store_files_file", "id"),
        Index("ix_vector_store_files_batch", "batch_id"),
        Index("ix_vector_store_files_status", "status"),
        Index("ix_vector_store_files_content_key", "content_key"),
    )

    vector_store_id: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    status: str = Field(default="in_progress", max_length=16)
    last_error: dict[str, str] | None = _json()
    usage_bytes: int = Field(default=0, sa_type=BigInteger)
    attributes: dict[str, Any] | None = _json()
    chunking_strategy: dict[str, Any] | None = _json()
    batch_id: str | None = Field(default=None, max_length=64)
    # the embed-once cache key of its chunks (content hash + model + chunking), once ingested
    content_key: str | None = Field(default=None, max_length=64)
    # ingestion bookkeeping, never on the wire
    enqueued_at: float | None = None
    owner: str | None = Field(default=None, max_length=128)
    lease_until: float | None = None
    attempts: int = 0

    def to_openai(self) -> WireVectorStoreFile:
        return WireVectorStoreFile.model_validate(
            {
                "id": self.id,
                "object": "vector_store.file",
                "created_at": ts(self.created_at),
                "vector_store_id": self.vector_store_id,
                "status": self.status,
                "last_error": self.last_error,
                "usage_bytes": self.usage_bytes,
                "attributes": self.attributes or {},
                "chunking_strategy": self.chunking_strategy or AUTO_CHUNKING,
            }
        )


class VectorStoreFileBatch(SQLModel, table=True):
    __tablename__ = "vector_store_file_batches"
    __table_args__ = (Index("ix_vector_store_file_batches_store", "vector_store_id"),)

    id: str = Field(default_factory=lambda: new_id("vsfb"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    vector_store_id: str = Field(max_length=64)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    status: str = Field(default="in_progress", max_length=16)
    file_counts: dict[str, int] | None = _json()

    def to_openai(self) -> WireVectorStoreFileBatch:
        return WireVectorStoreFileBatch.model_validate(
            {
                "id": self.id,
                "object": "vector_store.files_batch",
                "created_at": ts(self.created_at),
                "vector_store_id": self.vector_store_id,
                "status": self.status,
                "file_counts": self.file_counts or NO_FILES,
            }
        )


class FileChunk(SQLModel, table=True):
    """One embedded chunk of a file's text, shared by every vector store that holds the same bytes
    with the same embedding model and chunking (`content_key`): a file is embedded once.
    Attributes for filtering live on vector_store_files (they are per store)."""

    __tablename__ = "file_chunks"

    content_key: str = Field(primary_key=True, max_length=64)
    position: int = Field(primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32, L2-normalised


VECTOR_STORES, VECTOR_STORE_FILES, FILE_BATCHES, FILE_CHUNKS = (
    table_of(VectorStore),
    table_of(VectorStoreFile),
    table_of(VectorStoreFileBatch),
    table_of(FileChunk),
)
