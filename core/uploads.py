"""Tables of the Uploads API: a large file sent in parts, then assembled into a File.

Each part's bytes are stored under the part's id (the same storage as Files); completing the
upload assembles the parts, in the order the client names, under the new File's id and deletes
them. `received` counts the bytes of the parts stored so far, so an upload never holds more than
it declared.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Index, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from core.ids import new_id, now
from core.models import _seq, table_of

# OpenAI's figures: an upload holds at most 8 GB, a part 64 MB, and an upload expires after an hour
UPLOAD_BYTES = 8 * 1000**3
PART_BYTES = 64 * 1024 * 1024
LIFETIME_SECONDS = 3600
# ours: the parts one completion names (its lookup stays within SQLite's bound parameters)
MAX_PARTS = 10_000


class Upload(SQLModel, table=True):
    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_project_seq", "project", "seq"),)

    id: str = Field(default_factory=lambda: new_id("upload"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    expires_at: float = Field(default_factory=lambda: now() + LIFETIME_SECONDS)
    filename: str
    purpose: str = Field(max_length=32)
    mime_type: str = Field(max_length=256)
    bytes: int = Field(default=0, sa_type=BigInteger)  # declared
    received: int = Field(default=0, sa_type=BigInteger)  # in the parts stored so far
    # pending, completed, cancelled or expired (by retention); a pending upload past expires_at
    # shows as expired before retention gets to it
    status: str = Field(default="pending", max_length=16)
    file_id: str | None = Field(default=None, max_length=64)  # the File it became
    # the File's expires_after.seconds (counted from the File's creation, at completion)
    file_expires_seconds: int | None = None


class UploadPart(SQLModel, table=True):
    __tablename__ = "upload_parts"
    __table_args__ = (Index("ix_upload_parts_upload_seq", "upload_id", "seq"),)

    id: str = Field(default_factory=lambda: new_id("upload_part"), primary_key=True, max_length=64)
    upload_id: str = Field(max_length=64)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    bytes: int = Field(default=0, sa_type=BigInteger)


UPLOADS, UPLOAD_PARTS = table_of(Upload), table_of(UploadPart)


async def expire(conn: AsyncConnection, upload_id: str, t: float) -> list[str] | None:
    """A pending upload past its expires_at (at `t`) becomes expired and its part rows go: the
    storage keys of its parts, to delete once the caller has committed; None if it was not due
    (completed, cancelled, or expired by another worker first)."""
    c = UPLOADS.c
    due = update(UPLOADS).where(c.id == upload_id, c.status == "pending", c.expires_at <= t)
    if not (await conn.execute(due.values(status="expired"))).rowcount:
        return None
    of_upload = UPLOAD_PARTS.c.upload_id == upload_id
    keys = list((await conn.execute(select(UPLOAD_PARTS.c.id).where(of_upload))).scalars())
    await conn.execute(delete(UPLOAD_PARTS).where(of_upload))
    return keys


def status_of(row: Upload, at: float | None = None) -> str:
    t = now() if at is None else at
    return "expired" if row.status == "pending" and t > row.expires_at else row.status


def wire_upload(row: Upload, file: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "upload",
        "bytes": row.bytes,
        "created_at": int(row.created_at),
        "expires_at": int(row.expires_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": status_of(row),
        "file": file,
    }


def wire_part(row: UploadPart) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "upload.part",
        "created_at": int(row.created_at),
        "upload_id": row.upload_id,
    }
