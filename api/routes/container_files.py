"""Container files: add (an upload, or a copy of a File), list, retrieve, delete, content."""

from __future__ import annotations

from posixpath import basename
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlmodel import col
from starlette.datastructures import UploadFile

from api.container_rows import (
    container_of,
    delete_bytes,
    file_of,
    files_of,
    new_bytes,
    path_of,
    replace_at,
    usable,
)
from api.container_schemas import ContainerFileCreate, parse_json
from api.deps import Project, Session
from api.errors import BadRequest
from api.item_rows import Wired
from api.limits import is_multipart
from api.pagination import Listing, page_rows
from api.responses import deleted, listing
from api.routes.files import upload_name
from core.containers import ContainerFile, copy_bytes, wire_container_file
from core.ids import now

router = APIRouter(prefix="/{container_id}/files", tags=["containers"])

# the two bodies POST takes, declared by hand since the route reads its body itself
UPLOAD = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}
BODIES = {
    "required": True,
    "content": {
        "application/json": {"schema": ContainerFileCreate.model_json_schema()},
        "multipart/form-data": {"schema": UPLOAD},
    },
}


@router.post("", openapi_extra={"requestBody": BODIES})
async def create_container_file(
    request: Request, container_id: str, project: Project, session: Session
) -> Response:
    """Add a file to a container at /mnt/data/<name> (replacing the file there, if any): the bytes
    of a multipart `file`, or a copy of the File a JSON `{"file_id"}` names (the SDK sends one or
    the other, so the body is read here)."""
    container = usable(await container_of(session, container_id, project))
    storage, limit = request.app.state.storage, request.app.state.settings.max_file_bytes
    row = ContainerFile(container_id=container_id, project=project, path="", source="user")
    async with new_bytes(storage) as keys:
        keys.append(row.id)
        if is_multipart(request.headers):
            # past `limit` the storage raises TooLarge, a 413 (the Gate cut off anything larger)
            async with request.form(max_files=1, max_fields=16) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise _no_upload(upload)
                row.path = path_of(upload_name(upload.filename), "file")
                row.bytes = await run_in_threadpool(storage.save, row.id, upload.file, limit)
        else:
            body = parse_json(ContainerFileCreate, await request.body())
            (source,) = await files_of(session, project, [body.file_id])
            row.path, row.file_id = path_of(source.filename, "file_id"), source.id
            row.bytes = await run_in_threadpool(copy_bytes, storage, source.id, row.id, limit)
        replaced = await replace_at(session, container_id, row.path)
        container.last_active_at = now()
        session.add_all([row, container])
        await session.commit()
    await run_in_threadpool(delete_bytes, storage, replaced)
    return JSONResponse(wire_container_file(row))


def _no_upload(value: str | None) -> BadRequest:
    if value is None:
        return BadRequest(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    return BadRequest("Invalid type for 'file': expected a file upload.", param="file", code="invalid_type")


@router.get("")
async def list_container_files(
    container_id: str, params: Listing, project: Project, session: Session
) -> Response:
    """List a container's files (those the code wrote too)."""
    await container_of(session, container_id, project)
    where = col(ContainerFile.container_id) == container_id
    rows, has_more = await page_rows(session, ContainerFile, params, where)
    return listing([Wired(r.id, wire_container_file(r)) for r in rows], has_more)


@router.get("/{file_id}")
async def retrieve_container_file(
    container_id: str, file_id: str, project: Project, session: Session
) -> Response:
    """Retrieve a container file."""
    await container_of(session, container_id, project)
    return JSONResponse(wire_container_file(await file_of(session, container_id, file_id, project)))


@router.delete("/{file_id}")
async def delete_container_file(
    request: Request, container_id: str, file_id: str, project: Project, session: Session
) -> Response:
    """Delete a container file's row and bytes."""
    await container_of(session, container_id, project)
    row = await file_of(session, container_id, file_id, project)
    await session.delete(row)
    await session.commit()
    await run_in_threadpool(delete_bytes, request.app.state.storage, [file_id])
    return deleted(file_id, "container.file")


@router.get("/{file_id}/content")
async def container_file_content(
    request: Request, container_id: str, file_id: str, project: Project, session: Session
) -> Response:
    """The file's bytes, streamed."""
    await container_of(session, container_id, project)
    row = await file_of(session, container_id, file_id, project)
    disposition = f"attachment; filename*=UTF-8''{quote(basename(row.path))}"
    headers = {"Content-Disposition": disposition, "Content-Length": str(row.bytes)}
    return StreamingResponse(
        request.app.state.storage.open(file_id), media_type="application/octet-stream", headers=headers
    )
