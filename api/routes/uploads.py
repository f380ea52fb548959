"""Uploads: a large file sent in parts (each streamed to storage), then assembled into a File."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from api.body import Body, Id
from api.container_rows import delete_bytes, new_bytes
from api.deps import Project, Session
from api.errors import BadRequest
from api.params import Checked
from api.routes.files import FILENAME_CHARS, PURPOSES
from api.upload_rows import count_part, finish, md5_of, parts_in_order, pending, too_many_bytes, upload_of
from core.errors import TooLarge
from core.ids import now
from core.models import File as FileRow
from core.uploads import MAX_PARTS, PART_BYTES, UPLOAD_BYTES, Upload, UploadPart, wire_part, wire_upload

router = APIRouter(prefix="/uploads", tags=["uploads"], dependencies=[Checked])


class FileExpiry(Body):
    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=3600, le=2_592_000)]


class UploadCreate(Body):
    bytes: Annotated[int, Field(ge=0)]
    filename: Annotated[str, Field(min_length=1, max_length=FILENAME_CHARS)]
    mime_type: Annotated[str, Field(min_length=1, max_length=256)]
    purpose: str
    expires_after: FileExpiry | None = None  # the File's, once the upload is completed


class UploadComplete(Body):
    part_ids: Annotated[list[Id], Field(max_length=MAX_PARTS)]
    md5: Annotated[str, Field(max_length=64)] | None = None


@router.post("")
async def create_upload(request: Request, body: UploadCreate, project: Project, session: Session) -> Response:
    """Create an upload that takes parts for an hour."""
    if body.purpose not in PURPOSES:
        raise BadRequest(
            f"Invalid value for 'purpose': '{body.purpose}'. Expected one of {', '.join(PURPOSES)}.",
            param="purpose",
        )
    # the File it becomes is held to the Files API's cap too
    limit = min(UPLOAD_BYTES, request.app.state.settings.max_file_bytes)
    if body.bytes > limit:
        raise BadRequest(f"Invalid 'bytes': an upload may hold at most {limit} bytes.", param="bytes")
    row = Upload(
        project=project,
        filename=body.filename,
        purpose=body.purpose,
        mime_type=body.mime_type,
        bytes=body.bytes,
        file_expires_seconds=body.expires_after.seconds if body.expires_after else None,
    )
    session.add(row)
    await session.commit()
    return JSONResponse(wire_upload(row))


@router.post("/{upload_id}/parts")
async def add_part(
    request: Request,
    upload_id: str,
    project: Project,
    session: Session,
    data: Annotated[UploadFile, File()],
) -> Response:
    """Add a part (at most 64 MB) to a pending upload; its bytes go straight to storage."""
    row = await upload_of(session, upload_id, project)
    pending(row, "parts")
    size = data.size or 0  # counted while the form was spooled
    if size > PART_BYTES:
        raise TooLarge("Part", PART_BYTES, param="data")
    if row.received + size > row.bytes:
        raise too_many_bytes(row, size)
    part, storage = UploadPart(upload_id=row.id), request.app.state.storage
    async with new_bytes(storage) as keys:
        keys.append(part.id)
        part.bytes = await run_in_threadpool(storage.save, part.id, data.file, PART_BYTES)
        await count_part(session, row, part.bytes)
        session.add(part)
        await session.commit()
    return JSONResponse(wire_part(part))


@router.post("/{upload_id}/complete")
async def complete_upload(
    request: Request, upload_id: str, body: UploadComplete, project: Project, session: Session
) -> Response:
    """Assemble the parts, in the order of part_ids, into a File of exactly the declared bytes."""
    row = await upload_of(session, upload_id, project)
    pending(row, "completion")
    parts = await parts_in_order(session, row, body.part_ids)
    total = sum(p.bytes for p in parts)
    if total != row.bytes:
        raise BadRequest(
            f"The parts listed hold {total} bytes, but upload {row.id} was created with {row.bytes} bytes.",
            param="part_ids",
        )
    expires_at = now() + row.file_expires_seconds if row.file_expires_seconds else None
    file = FileRow(
        project=project, filename=row.filename, purpose=row.purpose, bytes=total, expires_at=expires_at
    )
    storage = request.app.state.storage
    async with new_bytes(storage) as keys:
        keys.append(file.id)
        await run_in_threadpool(storage.concat, file.id, [(p.id, p.bytes) for p in parts])
        if body.md5 is not None and await run_in_threadpool(md5_of, storage, file.id) != body.md5.lower():
            raise BadRequest("The md5 checksum given does not match the bytes of the parts.", param="md5")
        unused = await finish(session, row, "completed", file.id)
        session.add(file)
        await session.commit()
    await run_in_threadpool(delete_bytes, storage, unused)
    row.status, row.file_id = "completed", file.id
    return JSONResponse(wire_upload(row, file.to_openai().model_dump()))


@router.post("/{upload_id}/cancel")
async def cancel_upload(request: Request, upload_id: str, project: Project, session: Session) -> Response:
    """Cancel a pending upload and delete its parts."""
    row = await upload_of(session, upload_id, project)
    pending(row, "cancellation")
    keys = await finish(session, row, "cancelled")
    await session.commit()
    await run_in_threadpool(delete_bytes, request.app.state.storage, keys)
    row.status = "cancelled"
    return JSONResponse(wire_upload(row))
