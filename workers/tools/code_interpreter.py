"""The code_interpreter tool: the model's Python runs in its thread's sandbox session.

The model sees a `code_interpreter` function taking `code`. Its call becomes a run step tool
call of type `code_interpreter` with `input` and `outputs` (logs, images); images and files the
code leaves under /mnt/data are stored as File objects (purpose `assistants_output`) tied to
the run, so the final message can show the images and link `sandbox:/mnt/data/...` paths.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import re
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.ids import new_id, now, seq
from core.models import ASSISTANTS, FILES, THREADS
from core.storage import Storage
from core.store import MessageRow, RunRow

if TYPE_CHECKING:  # the sandbox (and Docker's client) load only where code runs
    from sandbox import Execution, InputFile, Sandboxes

log = logging.getLogger("assistd.worker")
NAME = "code_interpreter"
TOOL = {
    "type": "function",
    "function": {
        "name": NAME,
        "description": (
            "Run Python 3 code in a stateful Jupyter-like session: variables, imports and files persist "
            "across calls in this conversation. Print what you need to see. Files attached by the user are "
            "in /mnt/data; save files for the user under /mnt/data and link them as sandbox:/mnt/data/<name>. "
            "matplotlib figures are shown to the user. No internet access."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}
RESET = "[The code interpreter session was reset: earlier variables and files are gone.]"
LIMIT = "[The code was not run: no code interpreter session can be started now ({}). Answer without running code.]"
SANDBOX_LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'`>]+)")


class ToolUnavailable(Exception):
    """The tool cannot run on this worker (no Docker engine, no image): the run fails with this."""


def code_of(arguments: str) -> str:
    """The code in the model's arguments; a model that sends bare code instead of JSON is forgiven."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    return str(parsed.get("code", "")) if isinstance(parsed, dict) else arguments


def _ids(resources: dict[str, Any] | None) -> list[str]:
    return list(((resources or {}).get("code_interpreter") or {}).get("file_ids") or [])


async def input_files(
    engine: AsyncEngine, storage: Storage, run: RunRow, messages: list[MessageRow]
) -> list[InputFile]:
    """The files this run's code may read: the assistant's, the thread's, the run's and those
    attached to the thread's messages for code_interpreter."""
    from sandbox import InputFile

    async with engine.connect() as conn:
        assistant = (
            await conn.execute(select(ASSISTANTS.c.tool_resources).where(ASSISTANTS.c.id == run.assistant_id))
        ).scalar()
        thread = (
            await conn.execute(select(THREADS.c.tool_resources).where(THREADS.c.id == run.thread_id))
        ).scalar()
        wanted = _ids(assistant) + _ids(thread) + _ids(run.tool_resources)
        for message in messages:
            for attachment in message.attachments or []:
                if any(t.get("type") == NAME for t in attachment.get("tools") or []):
                    wanted.append(attachment["file_id"])
        if not wanted:
            return []
        rows = (
            await conn.execute(
                select(FILES.c.id, FILES.c.filename).where(
                    FILES.c.id.in_(set(wanted)), FILES.c.project == run.project
                )
            )
        ).all()
    names = {row.id: row.filename.rsplit("/", 1)[-1] for row in rows}
    out = []
    for file_id in dict.fromkeys(wanted):  # in order, once each
        if file_id in names:
            out.append(InputFile(file_id=file_id, name=names[file_id], data=reader(storage, file_id)))
    return out


def reader(storage: Storage, key: str) -> Callable[[], bytes]:
    """What reads a stored file's bytes (when the sandbox session does not have it yet)."""
    return functools.partial(_read, storage, key)


def _read(storage: Storage, key: str) -> bytes:
    return b"".join(storage.open(key))


async def _store(
    engine: AsyncEngine, storage: Storage, run: RunRow, filename: str, data: IO[bytes], size: int
) -> str:
    """Store `data` (read in chunks: an output file waits in a temporary file, not in memory)."""
    file_id = new_id("file-")
    await asyncio.to_thread(storage.save, file_id, data, size + 1)
    row = {
        "id": file_id,
        "project": run.project,
        "seq": seq(),
        "created_at": now(),
        "filename": filename,
        "purpose": "assistants_output",
        "bytes": size,
        "status": "processed",
        "expires_at": None,
        "sha256": None,
        "run_id": run.id,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(FILES), row)
    return file_id


async def outputs(
    engine: AsyncEngine, storage: Storage, run: RunRow, call_id: str, result: Execution
) -> list[dict[str, Any]]:
    """The step's outputs for one execution: its logs, then an image output per figure. Files
    written under /mnt/data become File objects of the run and are listed in the logs."""
    logs = result.logs
    if result.reset:
        logs = f"{RESET}\n{logs}"
    try:
        for out in result.files:
            await _store(engine, storage, run, out.path, out.data, out.size)
    finally:
        result.close()
    if result.files:
        logs += "\n[files saved: " + ", ".join(f"sandbox:{f.path}" for f in result.files) + "]"
    items: list[dict[str, Any]] = [{"type": "logs", "logs": logs}]
    for n, png in enumerate(result.images):
        file_id = await _store(engine, storage, run, f"{call_id}-{n}.png", io.BytesIO(png), len(png))
        items.append({"type": "image", "image": {"file_id": file_id}})
    return items


async def run_code(
    sandboxes: Sandboxes | None,
    engine: AsyncEngine,
    storage: Storage,
    run: RunRow,
    messages: list[MessageRow],
    call: dict[str, str],
) -> dict[str, Any]:
    """Execute one code_interpreter call in the thread's session; the step's tool call, outputs filled."""
    from sandbox import SandboxBusy, SandboxLimit, SandboxUnavailable

    if sandboxes is None:
        raise ToolUnavailable("Code interpreter is not available on this worker.")
    code = code_of(call["arguments"])
    try:
        files = await input_files(engine, storage, run, messages)
        result = await sandboxes.execute(run.thread_id, code, files, project=run.project)
    except (SandboxLimit, SandboxBusy) as exc:  # the run goes on: the model reads why its code did not run
        limited = [{"type": "logs", "logs": LIMIT.format(exc)}]
        return {"id": call["id"], "type": NAME, "code_interpreter": {"input": code, "outputs": limited}}
    except SandboxUnavailable as exc:
        raise ToolUnavailable(f"Code interpreter is unavailable: {exc}") from exc
    except Exception as exc:  # the engine failed us, not the code: the run fails, saying so
        log.warning("run %s: code interpreter failed", run.id, exc_info=True)
        raise ToolUnavailable(f"Code interpreter failed: {type(exc).__name__} {exc}".strip()) from exc
    items = await outputs(engine, storage, run, call["id"], result)
    return {"id": call["id"], "type": NAME, "code_interpreter": {"input": code, "outputs": items}}


def model_output(call: dict[str, Any]) -> str:
    """What the model reads back from a recorded code_interpreter call."""
    parts = []
    for item in call[NAME]["outputs"]:
        if item["type"] == "logs":
            parts.append(item["logs"])
        elif item["type"] == "image":
            parts.append(f"[image shown to the user: {item['image']['file_id']}]")
    return "\n".join(parts) or "(no output)"


async def attachments_of(engine: AsyncEngine, run_id: str, text: str) -> list[dict[str, Any]]:
    """file_path annotations for the `sandbox:/mnt/data/...` links in `text` to files this run wrote."""
    links = list(SANDBOX_LINK.finditer(text))
    if not links:
        return []
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(FILES.c.id, FILES.c.filename).where(FILES.c.run_id == run_id).order_by(FILES.c.seq)
            )
        ).all()
    by_path = {row.filename: row.id for row in rows}  # the newest file of a path wins
    found = []
    for m in links:
        path = m.group(1).rstrip(".,;:!?")  # the end of a sentence is not part of the name
        if path in by_path:
            found.append(
                {
                    "type": "file_path",
                    "text": "sandbox:" + path,
                    "start_index": m.start(),
                    "end_index": m.start() + len("sandbox:" + path),
                    "file_path": {"file_id": by_path[path]},
                }
            )
    return found
