"""Request bodies of the vector store endpoints, validated as OpenAI validates them."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator

from api.body import Body, Description, Id, Name
from api.schemas import AutoChunking, ChunkingStrategy, StaticChunking, _HasMetadata
from core.models import AUTO_CHUNKING

MAX_BATCH = 2000
AttributeValue = Union[bool, int, float, Annotated[str, Field(max_length=512)]]
Attributes = dict[str, AttributeValue] | None


def check_attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        if len(value) > 16:
            raise ValueError("attributes can have at most 16 key-value pairs.")
        if any(len(k) > 64 for k in value):
            raise ValueError("attribute keys can be at most 64 characters long.")
    return value


def stored_chunking(value: AutoChunking | StaticChunking | None) -> dict[str, Any]:
    """The strategy as the wire reports it: `auto` is the static 800/400 it stands for."""
    return AUTO_CHUNKING if not isinstance(value, StaticChunking) else value.model_dump()


class ExpiresAfter(Body):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


class _HasAttributes(Body):
    attributes: Attributes = None

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_attributes(v)


class VectorStoreCreate(_HasMetadata):
    name: Name | None = None
    description: Description | None = None
    file_ids: Annotated[list[Id], Field(max_length=MAX_BATCH)] | None = None
    chunking_strategy: ChunkingStrategy | None = None
    expires_after: ExpiresAfter | None = None


class VectorStoreUpdate(_HasMetadata):
    name: Name | None = None
    expires_after: ExpiresAfter | None = None


class VectorStoreFileCreate(_HasAttributes):
    file_id: Id
    chunking_strategy: ChunkingStrategy | None = None


class VectorStoreFileUpdate(_HasAttributes):
    pass


class BatchFile(_HasAttributes):
    file_id: Id
    chunking_strategy: ChunkingStrategy | None = None


class FileBatchCreate(_HasAttributes):
    file_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    files: Annotated[list[BatchFile], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    chunking_strategy: ChunkingStrategy | None = None

    def items(self) -> list[BatchFile]:
        """One entry per file; `file_ids` share the batch's attributes and chunking strategy."""
        if self.files is not None:
            return self.files
        ids = list(dict.fromkeys(self.file_ids or []))
        return [
            BatchFile(file_id=i, attributes=self.attributes, chunking_strategy=self.chunking_strategy)
            for i in ids
        ]


class RankingOptions(Body):
    ranker: Literal["none", "auto", "default-2024-11-15"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] | None = None


class SearchRequest(Body):
    query: Union[
        Annotated[str, Field(min_length=1)], Annotated[list[str], Field(min_length=1, max_length=10)]
    ]
    filters: dict[str, Any] | None = None
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    ranking_options: RankingOptions | None = None
    rewrite_query: bool | None = None

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)
