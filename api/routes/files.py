"""Files: upload (multipart, streamed to storage), list, retrieve, delete, content."""

from __future__ import annotations

from typing import Annotated, get_args
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from openai.types import FileObject
from pydantic import Field
from sqlmodel import col

from api.body import scan
from api.deps import Project, Session
from api.errors import BadRequest
from api.pagination import ListParams, page
from api.params import Checked
from api.responses import wire
from api.store import owned
from core.ids import now
from core.models import File as FileRow
from retrieval.removal import remove_file

router = APIRouter(prefix="/files", tags=["files"], dependencies=[Checked])

FILENAME_CHARS = 1024  # ours: a file's name, stored and echoed in every list of files

# exactly the purposes the SDK's FileObject can carry back
PURPOSES: tuple[str, ...] = get_args(FileObject.model_fields["purpose"].annotation)


class FileListParams(ListParams):
    limit: int = Field(10_000, ge=1, le=10_000)
    purpose: str | None = None


def _expiry(anchor: str | None, seconds: int | None) -> float | None:
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at" or seconds is None or not 3600 <= seconds <= 2_592_000:
        raise BadRequest(
            "expires_after needs anchor 'created_at' and seconds between 3600 and 2592000.",
            param="expires_after",
        )
    return now() + seconds


def upload_name(filename: str | None) -> str:
    """An upload's file name, or a 400 before any byte is kept (container files' uploads too)."""
    filename = filename or "upload"
    if (problem := scan(filename)) is not None or len(filename) > FILENAME_CHARS:
        why = problem[1] if problem else f"it is longer than {FILENAME_CHARS} characters"
        raise BadRequest(f"Invalid file name: {why}.", param="file", code="invalid_value")
    return filename


@router.post("")
async def create_file(
    request: Request,
    project: Project,
    session: Session,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
    anchor: Annotated[str | None, Form(alias="expires_after[anchor]")] = None,
    seconds: Annotated[int | None, Form(alias="expires_after[seconds]")] = None,
) -> Response:
    """Upload a file."""
    if purpose not in PURPOSES:
        raise BadRequest(
            f"Invalid value for 'purpose': '{purpose}'. Expected one of {', '.join(PURPOSES)}.",
            param="purpose",
        )
    filename = upload_name(file.filename)
    row = FileRow(project=project, filename=filename, purpose=purpose, expires_at=_expiry(anchor, seconds))
    # past the limit the storage raises TooLarge, a 413 (the Gate cut off anything larger than the file and its form fields)
    limit = request.app.state.settings.max_file_bytes
    row.bytes = await run_in_threadpool(request.app.state.storage.save, row.id, file.file, limit)
    session.add(row)
    await session.commit()
    return wire(row.to_openai())


@router.get("")
async def list_files(
    params: Annotated[FileListParams, Query()], project: Project, session: Session
) -> Response:
    """List files, optionally of one purpose."""
    where = [col(FileRow.project) == project]
    if params.purpose:
        where.append(col(FileRow.purpose) == params.purpose)
    return await page(session, FileRow, params, *where)


@router.get("/{file_id}")
async def retrieve_file(file_id: str, project: Project, session: Session) -> Response:
    """Retrieve a file's metadata."""
    return wire((await owned(session, FileRow, file_id, project)).to_openai())


@router.delete("/{file_id}")
async def delete_file(request: Request, file_id: str, project: Project, session: Session) -> Response:
    """Delete a file and its bytes; vector stores holding it lose it too."""
    await owned(session, FileRow, file_id, project)
    await remove_file(await session.connection(), file_id)
    await session.commit()
    await run_in_threadpool(request.app.state.storage.delete, file_id)
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


@router.get("/{file_id}/content")
async def file_content(request: Request, file_id: str, project: Project, session: Session) -> Response:
    """The file's bytes, streamed."""
    row = await owned(session, FileRow, file_id, project)
    disposition = f"attachment; filename*=UTF-8''{quote(row.filename)}"
    headers = {"Content-Disposition": disposition, "Content-Length": str(row.bytes)}
    return StreamingResponse(
        request.app.state.storage.open(file_id), media_type="application/octet-stream", headers=headers
    )
