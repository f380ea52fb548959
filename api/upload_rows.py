"""Upload rows the upload routes share: lookups in the caller's project, and the changes of an
upload's state, each one conditional UPDATE.

A part is stored before its row is written (its size is known only then), so two requests on
one upload can race: a part against the completion or the cancellation, two parts against the
declared size. Each write re-checks the upload's state in its WHERE clause; the loser gets a 400
and removes what it stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy import select as sql_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import BadRequest, NotFound
from core.ids import now
from core.storage import Storage
from core.uploads import UPLOAD_PARTS, UPLOADS, Upload, UploadPart, status_of


async def upload_of(session: AsyncSession, upload_id: str, project: str) -> Upload:
    """The caller's upload (its current row), or 404: another project's is not there."""
    row = await session.get(Upload, upload_id, populate_existing=True)
    if row is None or row.project != project:
        raise NotFound.of("upload", upload_id)
    return row


def refusal(row: Upload, what: str) -> BadRequest:
    """Why an upload that is no longer pending refuses `what` ("parts", "completion")."""
    status = status_of(row)
    if status == "expired":
        return BadRequest(f"Upload {row.id} has expired and can no longer accept {what}.")
    if status == "completed":
        return BadRequest(f"Upload {row.id} is already completed and can no longer accept {what}.")
    if status == "cancelled":
        return BadRequest(f"Upload {row.id} was cancelled and can no longer accept {what}.")
    return BadRequest(
        f"Upload {row.id} cannot accept {what} now; try again."
    )  # a race lost to another request


def pending(row: Upload, what: str) -> None:
    if status_of(row) != "pending":
        raise refusal(row, what)


async def _changed(session: AsyncSession, upload_id: str, *where: Any, **values: Any) -> bool:
    """Whether this pending, unexpired upload was changed (False: another request came first)."""
    c = UPLOADS.c
    query = (
        update(UPLOADS)
        .where(c.id == upload_id, c.status == "pending", c.expires_at > now(), *where)
        .values(**values)
    )
    result = await (await session.connection()).execute(query)
    return bool(result.rowcount)


async def count_part(session: AsyncSession, row: Upload, size: int) -> None:
    """Add a part's size to the upload's, or 400: past the declared bytes, or no longer pending."""
    c = UPLOADS.c
    if not await _changed(session, row.id, c.received + size <= c.bytes, received=c.received + size):
        await session.refresh(row)
        if status_of(row) != "pending":
            raise refusal(row, "parts")
        raise too_many_bytes(row, size)


def too_many_bytes(row: Upload, size: int) -> BadRequest:
    return BadRequest(
        f"This part of {size} bytes would take upload {row.id} past the {row.bytes} bytes it was "
        f"created with ({row.received} received so far).",
        param="data",
    )


async def finish(session: AsyncSession, row: Upload, status: str, file_id: str | None = None) -> list[str]:
    """Complete or cancel the upload and remove its part rows; the storage keys of its parts,
    to delete once the caller has committed. 400 when it is no longer pending."""
    if not await _changed(session, row.id, status=status, file_id=file_id):
        await session.refresh(row)
        raise refusal(row, "completion" if status == "completed" else "cancellation")
    conn, of_upload = await session.connection(), UPLOAD_PARTS.c.upload_id == row.id
    keys = list((await conn.execute(sql_select(UPLOAD_PARTS.c.id).where(of_upload))).scalars())
    await conn.execute(delete(UPLOAD_PARTS).where(of_upload))
    return keys


async def parts_in_order(session: AsyncSession, row: Upload, part_ids: list[str]) -> list[UploadPart]:
    """The upload's parts named by part_ids, in that order; 400 for a part named twice or not
    of this upload."""
    query = select(UploadPart).where(UploadPart.upload_id == row.id, col(UploadPart.id).in_(part_ids))
    found = {p.id: p for p in (await session.exec(query)).all()}
    seen: set[str] = set()
    for i, part_id in enumerate(part_ids):
        if part_id not in found:
            raise BadRequest(f"No part found with id '{part_id}' in upload {row.id}.", param=f"part_ids[{i}]")
        if part_id in seen:
            raise BadRequest(f"Part '{part_id}' is listed more than once.", param=f"part_ids[{i}]")
        seen.add(part_id)
    return [found[i] for i in part_ids]


def md5_of(storage: Storage, key: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in storage.open(key):
        digest.update(chunk)
    return digest.hexdigest()
