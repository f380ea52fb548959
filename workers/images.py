"""Images in a prompt: uploaded files (a message's `image_file` part, a response's `input_image`
with a `file_id`) go to the model inline as data: URLs, since the model's server cannot read our
storage; an endpoint without vision (ModelEndpoint.vision false) gets a note in their place.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from core.models import FILES
from core.storage import Storage
from core.store import ClaimedResponse, MessageRow
from workers.context import Context

# the image types OpenAI's vision models take, by their first bytes
MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
]


@dataclass(frozen=True)
class Image:
    name: str  # the file's name, for the note an endpoint without vision gets
    url: str | None  # data: URL; None when not read (no vision) or its bytes are gone


def mime_type(data: bytes, filename: str) -> str:
    """The image's type from its bytes (a file's name may lie), else from its name."""
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def note(name: str) -> str:
    return f"[image: {name}]"


def url_name(url: str) -> str:
    """How a note names an image given by URL (an inline data: URL has no name to give)."""
    return "inline image" if url.startswith("data:") else url


def _read(storage: Storage, key: str) -> bytes:
    return b"".join(storage.open(key))


async def load(ctx: Context, project: str, file_ids: Iterable[str], vision: bool) -> dict[str, Image]:
    """The project's files among `file_ids`, their bytes read only for an endpoint with vision."""
    wanted = set(file_ids)
    if not wanted:
        return {}
    async with ctx.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(FILES.c.id, FILES.c.filename).where(FILES.c.id.in_(wanted), FILES.c.project == project)
            )
        ).all()
    out = {}
    for row in rows:
        name = row.filename.rsplit("/", 1)[-1]
        url = None
        if vision and ctx.storage is not None:
            try:
                data = await asyncio.to_thread(_read, ctx.storage, row.id)
            except OSError:  # deleted between the query and the read: the model gets the note
                data = b""
            if data:
                url = f"data:{mime_type(data, name)};base64,{base64.b64encode(data).decode()}"
        out[row.id] = Image(name, url)
    return out


async def for_thread(ctx: Context, project: str, thread: list[MessageRow], vision: bool) -> dict[str, Image]:
    """The images the user's messages of a thread show (image_file parts), by file id."""
    ids = [
        part["image_file"]["file_id"]
        for m in thread
        if m.role == "user"
        for part in m.content or []
        if part.get("type") == "image_file"
    ]
    return await load(ctx, project, ids, vision)


async def for_response(ctx: Context, claimed: ClaimedResponse, vision: bool) -> ClaimedResponse:
    """The response's context with each input_image as its prompt shows it: a file's bytes as
    a data: URL, or (no vision) an input_text note; the stored items are left as they are."""
    parts = [p for item in claimed.items for p in _parts(item) if p.get("type") == "input_image"]
    if not parts:
        return claimed
    files = await load(
        ctx, claimed.response.project, [p["file_id"] for p in parts if p.get("file_id")], vision
    )
    items = []
    for item in claimed.items:
        if any(p.get("type") == "input_image" for p in _parts(item)):
            item = item | {"content": [_shown(p, files, vision) for p in item["content"]]}
        items.append(item)
    return replace(claimed, items=items)


def _parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    content = item.get("content") if item.get("type", "message") == "message" else None
    return content if isinstance(content, list) else []


def _shown(part: dict[str, Any], files: dict[str, Image], vision: bool) -> dict[str, Any]:
    if part.get("type") != "input_image":
        return part
    file_id = part.get("file_id")
    image = files.get(file_id) if file_id else None
    url = image.url if image else part.get("image_url")
    if vision and url:
        return part | {"image_url": url, "file_id": None}
    name = image.name if image else (file_id or url_name(part.get("image_url") or ""))
    return {"type": "input_text", "text": note(name)}
