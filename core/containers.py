"""Tables of the Containers API: a container is a code interpreter session that clients can see.

Its state (variables, files) lives in a sandbox session keyed by the container's id (sandbox/);
these rows hold what the API shows and what must outlive a sandbox: the container's settings,
its last activity (it expires `expires_minutes` after it) and its files. A file's bytes are in
the storage under the container file's id; files added through the API are copied into the
sandbox at its next execution, files the code writes are copied out after it.
"""

from __future__ import annotations

import posixpath
import tempfile
from typing import Any, Literal

from sqlalchemy import ColumnElement, Index, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from core.ids import new_id, now
from core.models import _json, _seq, table_of
from core.storage import CHUNK, Storage

DEFAULT_MINUTES = 20  # OpenAI's: a container idle for 20 minutes expires
MemoryLimit = Literal["1g", "4g", "16g", "64g"]
MEMORY_LIMITS = {"1g": 1 << 30, "4g": 4 << 30, "16g": 16 << 30, "64g": 64 << 30}
DATA_DIR = "/mnt/data"
NAME_BYTES = 255  # NAME_MAX on Linux: the longest file name /mnt/data in a sandbox can hold


class Container(SQLModel, table=True):
    __tablename__ = "containers"
    __table_args__ = (Index("ix_containers_project_seq", "project", "seq"),)

    id: str = Field(default_factory=lambda: new_id("cntr"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    name: str = Field(max_length=256)
    expires_minutes: int = DEFAULT_MINUTES  # after last_active_at
    last_active_at: float = Field(default_factory=now)
    memory_limit: str = Field(default="1g", max_length=8)
    file_ids: list[str] | None = _json()  # the files it was created with
    # the response chain or conversation an `auto` container belongs to (reused by its next response)
    owner_key: str | None = Field(default=None, max_length=64, index=True)


class ContainerFile(SQLModel, table=True):
    __tablename__ = "container_files"
    __table_args__ = (Index("ix_container_files_container_seq", "container_id", "seq"),)

    id: str = Field(default_factory=lambda: new_id("cfile"), primary_key=True, max_length=64)
    container_id: str = Field(max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    path: str = Field(max_length=1024)  # /mnt/data/<name>
    bytes: int = 0
    source: str = Field(default="user", max_length=16)  # "user" (API), "assistant" (the code wrote it)
    file_id: str | None = Field(default=None, max_length=64)  # the File it was copied from


CONTAINERS, CONTAINER_FILES = table_of(Container), table_of(ContainerFile)


def expired(t: float) -> ColumnElement[bool]:
    """Containers expired at `t`: `expires_minutes` past their last activity (as status_of)."""
    c = CONTAINERS.c
    return c.last_active_at + c.expires_minutes * 60 < t


async def clear_files(conn: AsyncConnection, container_id: str, t: float) -> list[str]:
    """Delete the file rows of a container expired at `t` (an expired container's data goes, as
    at OpenAI; the container itself stays, `expired`): their storage keys, to delete once the
    caller has committed; none if it is not expired."""
    f = CONTAINER_FILES.c
    still = select(CONTAINERS.c.id).where(CONTAINERS.c.id == container_id, expired(t)).exists()
    keys = list((await conn.execute(select(f.id).where(f.container_id == container_id, still))).scalars())
    if keys:
        await conn.execute(delete(CONTAINER_FILES).where(f.id.in_(keys)))
    return keys


def status_of(row: Any, at: float | None = None) -> str:
    """`running` until `expires_minutes` past its last activity, then `expired`."""
    t = now() if at is None else at
    return "expired" if t > row.last_active_at + row.expires_minutes * 60 else "running"


def wire_container(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "container",
        "created_at": int(row.created_at),
        "name": row.name,
        "status": status_of(row),
        "expires_after": {"anchor": "last_active_at", "minutes": row.expires_minutes},
        "last_active_at": int(row.last_active_at),
        "memory_limit": row.memory_limit,
    }


def wire_container_file(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "container.file",
        "bytes": row.bytes,
        "container_id": row.container_id,
        "created_at": int(row.created_at),
        "path": row.path,
        "source": row.source,
    }


def data_path(filename: str) -> str | None:
    """Where a file of this name goes in a container: /mnt/data/<the name's last part>. None when
    that part cannot name a file there (empty, `.`, `..`, longer than NAME_BYTES in UTF-8): a
    name like `../x` must not reach outside /mnt/data when the file is copied into the sandbox."""
    name = posixpath.basename(filename.replace("\\", "/"))  # a Windows client's path too
    if name in ("", ".", "..") or len(name.encode()) > NAME_BYTES:
        return None
    return f"{DATA_DIR}/{name}"


def copy_bytes(store: Storage, source: str, target: str, limit: int) -> int:
    """Copy the bytes stored under `source` to `target`; their size. Through a spooled temporary
    file, in chunks: S3's upload needs a seekable source, and a file may be hundreds of MB."""
    with tempfile.SpooledTemporaryFile(max_size=8 * CHUNK) as spool:
        for chunk in store.open(source):
            spool.write(chunk)
        spool.seek(0)
        return store.save(target, spool, limit)
