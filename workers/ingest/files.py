"""What ingestion does to a group of files, apart from the bookkeeping: read their bytes, key
them by content, extract and chunk the ones not embedded yet, and hand out their chunks to
embed in requests that span files (workers/ingest.py drives it and writes the outcomes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.storage import Storage
from retrieval.errors import InvalidFile, UnsupportedFile


def content_key(data: bytes, store: Any, size: int, overlap: int) -> str:
    """The embed-once cache key: same bytes, model and chunking give the same chunks."""
    parts = [
        hashlib.sha256(data).hexdigest(),
        store.embedding_model,
        store.embedding_endpoint or "",
        size,
        overlap,
    ]
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def sizes(chunking: dict[str, Any] | None) -> tuple[int, int]:
    static = (chunking or {}).get("static") or {}
    return int(static.get("max_chunk_size_tokens", 800)), int(static.get("chunk_overlap_tokens", 400))


def read_all(store: Storage, file_ids: list[str]) -> list[bytes]:
    """The files' bytes, in one thread hop for the group."""
    return [b"".join(store.open(file_id)) for file_id in file_ids]


@dataclass
class Outcome:
    """How a file's ingestion ended, to be written (see Ingestor.write_outcomes)."""

    vsf: Any
    status: str
    key: str | None
    usage: int = 0
    last_error: dict[str, str] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # its new chunks

    @classmethod
    def failed(cls, vsf: Any, code: str, message: str) -> Outcome:
        return cls(vsf, "failed", None, last_error={"code": code, "message": message[:1000]})


@dataclass
class Pending:
    """A file whose content is to be embedded: its chunks' texts, and the rows embedded so far.
    `same` are the group's other files with the same content: they end as this one does."""

    vsf: Any
    key: str
    texts: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    same: list[Any] = field(default_factory=list)

    def add(self, position: int, vector: np.ndarray) -> None:
        self.rows.append(
            {
                "content_key": self.key,
                "position": position,
                "text": self.texts[position],
                "vector": vector.astype("<f4").tobytes(),
            }
        )

    def outcomes(self) -> list[Outcome]:
        usage = sum(len(r["text"]) + len(r["vector"]) for r in self.rows)
        return [
            Outcome(self.vsf, "completed", self.key, usage, rows=self.rows),
            *(Outcome(v, "completed", self.key, usage) for v in self.same),
        ]


def prepare(filename: str, data: bytes, size: int, overlap: int) -> list[str] | Outcome:
    """The chunk texts of one file, or the error it fails with (its vsf is filled in by the caller)."""
    # loaded on first use: the tokenizer costs a worker a second to import
    from retrieval.chunk import chunk_text
    from retrieval.extract import extract_text

    try:
        return [c.text for c in chunk_text(extract_text(filename, data), size, overlap)]
    except UnsupportedFile as exc:
        return Outcome.failed(None, "unsupported_file", f"{exc}")
    except InvalidFile as exc:
        return Outcome.failed(None, "invalid_file", f"{exc}")
    except Exception as exc:  # a parser's own failure on malformed bytes: this file only
        return Outcome.failed(
            None, "invalid_file", f"The file could not be read ({type(exc).__name__}: {exc})."
        )


def prepare_all(jobs: list[tuple[str, bytes, int, int]]) -> list[list[str] | Outcome]:
    """`prepare` for each file of the group, in one thread hop."""
    return [prepare(*job) for job in jobs]


def spans(files: list[Pending], step: int) -> Iterator[list[tuple[Pending, int]]]:
    """The group's chunks, `step` at a time across files: (file, position) for each, in order."""
    span: list[tuple[Pending, int]] = []
    for f in files:
        for position in range(len(f.texts)):
            span.append((f, position))
            if len(span) == step:
                yield span
                span = []
    if span:
        yield span
