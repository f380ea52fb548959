"""code_interpreter for responses: the model's Python runs in a container (a sandbox session keyed
by the container's id, so its variables and files persist until it expires).

The tool's `container` is a container id, or `auto`: the container this conversation or chain
of responses used last (found in its code_interpreter_call items), else a new one. Files of the
container (added through the Containers API, or `file_ids`) are copied into /mnt/data before
the code runs; files the code writes there become container files. An expired or deleted
container is reported to the model as a lost session, and the response goes on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.containers import (
    CONTAINER_FILES,
    CONTAINERS,
    DATA_DIR,
    MEMORY_LIMITS,
    copy_bytes,
    data_path,
    expired,
    status_of,
)
from core.ids import new_id, now, seq
from core.models import FILES
from core.store import ResponseRow
from workers.context import Context
from workers.tools.code_interpreter import LIMIT, RESET, ToolUnavailable, code_of, reader

if TYPE_CHECKING:
    from sandbox import Execution, InputFile

log = logging.getLogger("assistd.worker")
LOST = (
    "[The container {id} {why}: its variables and files are gone, and the code was not run. "
    "Tell the user; a new container needs a new code_interpreter setting.]"
)
REPLACED = (
    "[The earlier container {id} expired: this code ran in a new one; earlier variables and files are gone.]"
)


@dataclass
class Ran:
    """One execution as the response shows it and the model reads it."""

    container_id: str
    status: str  # the item's: completed, or failed (the code never ran)
    outputs: list[dict[str, Any]]
    text: str  # for the model
    files: dict[str, str] = field(default_factory=dict)  # /mnt/data path -> container file id


def last_container(items: list[dict[str, Any]]) -> str | None:
    """The container of the newest code_interpreter_call among these items."""
    for item in reversed(items):
        if item.get("type") == "code_interpreter_call" and item.get("container_id"):
            return str(item["container_id"])
    return None


async def _row(conn: AsyncConnection, container_id: str, project: str) -> Any:
    query = select(CONTAINERS).where(CONTAINERS.c.id == container_id, CONTAINERS.c.project == project)
    return (await conn.execute(query)).first()


async def _copy_files(
    ctx: Context, conn: AsyncConnection, container_id: str, project: str, ids: list[str]
) -> None:
    """Add these uploaded files to the container (once each), as the Containers API would."""
    if not ids:
        return
    have = set(
        (
            await conn.execute(
                select(CONTAINER_FILES.c.file_id).where(CONTAINER_FILES.c.container_id == container_id)
            )
        ).scalars()
    )
    rows = (
        await conn.execute(
            select(FILES.c.id, FILES.c.filename, FILES.c.bytes).where(
                FILES.c.id.in_([i for i in ids if i not in have]), FILES.c.project == project
            )
        )
    ).all()
    storage = ctx.storage
    assert storage is not None
    for file in rows:
        cfile = new_id("cfile")
        size = await asyncio.to_thread(copy_bytes, storage, file.id, cfile, file.bytes + 1)
        path = data_path(file.filename) or f"{DATA_DIR}/{file.id}"
        await conn.execute(
            insert(CONTAINER_FILES),
            {
                "id": cfile,
                "container_id": container_id,
                "project": project,
                "seq": seq(),
                "created_at": now(),
                "path": path,
                "bytes": size,
                "source": "user",
                "file_id": file.id,
            },
        )


async def resolve(ctx: Context, r: ResponseRow, spec: Any, context: list[dict[str, Any]]) -> tuple[Any, str]:
    """(the container row to run in, a note for the model); the row is None when the named
    container is gone (the note says so)."""
    async with ctx.engine.begin() as conn:
        if isinstance(spec, str):
            row = await _row(conn, spec, r.project)
            if row is None:
                return None, LOST.format(id=spec, why="was deleted")
            if status_of(row) == "expired":
                return None, LOST.format(id=spec, why="expired")
            return row, ""
        note = ""
        earlier = last_container(context)
        row = await _row(conn, earlier, r.project) if earlier else None
        if row is not None and status_of(row) == "expired":
            row, note = None, REPLACED.format(id=earlier)
        if row is None:
            created = now()
            container_id = new_id("cntr")
            values = {
                "id": container_id,
                "project": r.project,
                "seq": seq(),
                "created_at": created,
                "name": f"auto for {r.id}",
                "expires_minutes": 20,
                "last_active_at": created,
                "memory_limit": spec.get("memory_limit") or "1g",
                "file_ids": spec.get("file_ids") or [],
                "owner_key": r.conversation_id or r.id,
            }
            await conn.execute(insert(CONTAINERS), values)
            row = await _row(conn, container_id, r.project)
        await _copy_files(ctx, conn, row.id, r.project, list(spec.get("file_ids") or []))
        return row, note


async def _inputs(ctx: Context, container_id: str) -> list[InputFile]:
    from sandbox import InputFile

    async with ctx.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(CONTAINER_FILES.c.id, CONTAINER_FILES.c.path)
                .where(CONTAINER_FILES.c.container_id == container_id, CONTAINER_FILES.c.source == "user")
                .order_by(CONTAINER_FILES.c.seq)
            )
        ).all()
    assert ctx.storage is not None
    return [InputFile(row.id, posixpath.basename(row.path), reader(ctx.storage, row.id)) for row in rows]


async def _keep(ctx: Context, row: Any, result: Execution) -> dict[str, str]:
    """The files the code wrote, as container files (a path written again replaces its file)."""
    assert ctx.storage is not None
    kept: dict[str, str] = {}
    try:
        for out in result.files:
            cfile = new_id("cfile")
            await asyncio.to_thread(ctx.storage.save, cfile, out.data, out.size + 1)
            async with ctx.engine.begin() as conn:
                where = CONTAINER_FILES.c.container_id == row.id, CONTAINER_FILES.c.path == out.path
                old = list((await conn.execute(select(CONTAINER_FILES.c.id).where(*where))).scalars())
                await conn.execute(delete(CONTAINER_FILES).where(*where))
                await conn.execute(
                    insert(CONTAINER_FILES),
                    {
                        "id": cfile,
                        "container_id": row.id,
                        "project": row.project,
                        "seq": seq(),
                        "created_at": now(),
                        "path": out.path,
                        "bytes": out.size,
                        "source": "assistant",
                        "file_id": None,
                    },
                )
            for key in old:
                await asyncio.to_thread(ctx.storage.delete, key)
            kept[out.path] = cfile
    finally:
        result.close()
    return kept


async def end_gone_sessions(ctx: Context, engine: AsyncEngine) -> int:
    """End the sandbox sessions of containers deleted or expired since they last ran code (their
    sandboxes were kept until idle, 20 minutes): how many ended. Called by the sweeper."""
    from sandbox import SandboxBusy

    if ctx.sandboxes is None:
        return 0
    keys = await ctx.sandboxes.sessions("cntr_")
    if not keys:
        return 0
    c = CONTAINERS.c
    async with engine.connect() as conn:
        live = set((await conn.execute(select(c.id).where(c.id.in_(keys), ~expired(now())))).scalars())
    ended = 0
    for key in (key for key in keys if key not in live):
        try:  # the sweeper must not wait on an execution: a busy one is ended at a later sweep
            await ctx.sandboxes.forget(key, wait=0.1)
            ended += 1
        except SandboxBusy:
            pass
    return ended


async def run_code(
    ctx: Context, r: ResponseRow, spec: Any, context: list[dict[str, Any]], arguments: str
) -> Ran:
    """Run the call's code in its container; what the item shows and the model reads."""
    from sandbox import SandboxBusy, SandboxLimit, SandboxUnavailable

    if ctx.sandboxes is None or ctx.storage is None:
        raise ToolUnavailable("Code interpreter is not available on this worker.")
    code = code_of(arguments)
    row, note = await resolve(ctx, r, spec, context)
    gone = spec if isinstance(spec, str) else last_container(context)
    if (row is None or row.id != gone) and gone is not None:
        await ctx.sandboxes.forget(gone)  # an expired or deleted container's session ends now
    if row is None:
        container_id = spec if isinstance(spec, str) else ""
        return Ran(container_id, "failed", [{"type": "logs", "logs": note}], note)
    memory = MEMORY_LIMITS.get(row.memory_limit) if row.memory_limit != "1g" else None
    try:
        files = await _inputs(ctx, row.id)
        result = await ctx.sandboxes.execute(row.id, code, files, project=r.project, memory_bytes=memory)
    except (SandboxLimit, SandboxBusy) as exc:  # the response goes on: the model reads why
        text = LIMIT.format(exc)
        return Ran(row.id, "failed", [{"type": "logs", "logs": text}], text)
    except SandboxUnavailable as exc:
        raise ToolUnavailable(f"Code interpreter is unavailable: {exc}") from exc
    except Exception as exc:  # the engine failed us, not the code
        log.warning("response %s: code interpreter failed", r.id, exc_info=True)
        raise ToolUnavailable(f"Code interpreter failed: {type(exc).__name__} {exc}".strip()) from exc
    async with ctx.engine.begin() as conn:
        await conn.execute(update(CONTAINERS).where(CONTAINERS.c.id == row.id).values(last_active_at=now()))
    logs = (f"{note}\n" if note else "") + (f"{RESET}\n" if result.reset else "") + result.logs
    images = list(result.images)
    kept = await _keep(ctx, row, result)
    outputs: list[dict[str, Any]] = [{"type": "logs", "logs": logs}]
    outputs += [
        {"type": "image", "url": "data:image/png;base64," + base64.b64encode(png).decode()} for png in images
    ]
    text = logs
    if kept:
        text += "\n[files saved: " + ", ".join(f"sandbox:{path}" for path in kept) + "]"
    text += "".join("\n[image shown to the user]" for _ in images)
    return Ran(row.id, "completed", outputs, text or "(no output)", kept)
