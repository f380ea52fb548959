"""Request bodies, validated as OpenAI validates them (unknown parameters are errors)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from openai.types.shared import ReasoningEffort
from pydantic import Field, ValidationInfo, field_validator

from api.body import MESSAGE_CHARS, Body, Description, Id, Instructions, MessageText, ModelName, Name, Tokens

_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# ours, where OpenAI states no figure
FUNCTION_DESCRIPTION_CHARS = 1024  # OpenAI's Chat Completions refuses longer ones
PARTS_PER_MESSAGE = 32
ATTACHMENTS_PER_MESSAGE = 20
MESSAGES_PER_REQUEST = 32  # thread.messages and additional_messages
URL_CHARS = 8192
TOOL_OUTPUT_CHARS = 1_048_576
TOOL_CALL_ID_CHARS = 256
FunctionDescription = Annotated[str, Field(max_length=FUNCTION_DESCRIPTION_CHARS)]


def check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > 16:
        raise ValueError("metadata can have at most 16 key-value pairs.")
    for key, val in value.items():
        if len(key) > 64:
            raise ValueError(f"metadata keys can be at most 64 characters long ('{key[:20]}...').")
        if len(val) > 512:
            raise ValueError(f"metadata values can be at most 512 characters long (key '{key}').")
    return value


Metadata = dict[str, str] | None


class FunctionDefinition(Body):
    name: str
    description: FunctionDescription | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _FUNCTION_NAME.match(v):
            raise ValueError("function names must match ^[a-zA-Z0-9_-]{1,64}$.")
        return v


class FunctionTool(Body):
    type: Literal["function"]
    function: FunctionDefinition


class CodeInterpreterTool(Body):
    type: Literal["code_interpreter"]


class FileSearchRanking(Body):
    score_threshold: Annotated[float, Field(ge=0, le=1)]
    ranker: Literal["auto", "default_2024_08_21"] | None = None


class FileSearchSettings(Body):
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: FileSearchRanking | None = None


class FileSearchTool(Body):
    type: Literal["file_search", "retrieval"]  # "retrieval" is its v1 name, stored as file_search
    file_search: FileSearchSettings | None = None

    @field_validator("type")
    @classmethod
    def _v2_name(cls, value: str) -> str:
        return "file_search"


Tool = Annotated[Union[FunctionTool, CodeInterpreterTool, FileSearchTool], Field(discriminator="type")]


class JSONSchemaFormat(Body):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: FunctionDescription | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(Body):
    type: Literal["text"]


class ResponseFormatJSONObject(Body):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(Body):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = Union[
    Literal["auto"],
    Annotated[
        Union[ResponseFormatText, ResponseFormatJSONObject, ResponseFormatJSONSchema],
        Field(discriminator="type"),
    ],
]


class ToolChoiceFunctionName(Body):
    name: Annotated[str, Field(max_length=64)]


class ToolChoiceObject(Body):
    type: Literal["function", "code_interpreter", "file_search", "retrieval"]
    function: ToolChoiceFunctionName | None = None

    @field_validator("type")
    @classmethod
    def _v2_name(cls, value: str) -> str:
        return "file_search" if value == "retrieval" else value


ToolChoice = Union[Literal["none", "auto", "required"], ToolChoiceObject]


class TruncationStrategy(Body):
    type: Literal["auto", "last_messages"]
    last_messages: Tokens | None = None


def files(ids: list[str] | None) -> list[tuple[str, str]]:
    return [("file", i) for i in ids or []]


class FileIds(Body):
    file_ids: Annotated[list[Id], Field(max_length=20)] | None = None

    def refs(self) -> list[tuple[str, str]]:
        return files(self.file_ids)


class AutoChunking(Body):
    type: Literal["auto"]


class StaticSizes(Body):
    max_chunk_size_tokens: Annotated[int, Field(ge=100, le=4096)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @field_validator("chunk_overlap_tokens")
    @classmethod
    def _half(cls, v: int, info: ValidationInfo) -> int:
        if v > info.data.get("max_chunk_size_tokens", 4096) // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens.")
        return v


class StaticChunking(Body):
    type: Literal["static"]
    static: StaticSizes


ChunkingStrategy = Annotated[Union[AutoChunking, StaticChunking], Field(discriminator="type")]


class VectorStoreHelper(Body):
    """`tool_resources.file_search.vector_stores[]`: a vector store to create with these files."""

    file_ids: Annotated[list[Id], Field(max_length=10_000)] | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(v)

    def refs(self) -> list[tuple[str, str]]:
        return files(self.file_ids)


class VectorStoreIds(Body):
    vector_store_ids: Annotated[list[Id], Field(max_length=1)] | None = None

    def refs(self) -> list[tuple[str, str]]:
        return [("vector store", i) for i in self.vector_store_ids or []]


class FileSearchResources(VectorStoreIds):
    vector_stores: Annotated[list[VectorStoreHelper], Field(max_length=1)] | None = None


class ToolResources(Body):
    code_interpreter: FileIds | None = None
    file_search: FileSearchResources | None = None


class RunToolResources(Body):
    """A run's own tool_resources (POST /threads/runs): existing vector stores only, no helpers."""

    code_interpreter: FileIds | None = None
    file_search: VectorStoreIds | None = None


class AttachmentTool(Body):
    type: Literal["code_interpreter", "file_search"]


class Attachment(Body):
    file_id: Id
    tools: Annotated[list[AttachmentTool], Field(max_length=2)] | None = None

    def refs(self) -> list[tuple[str, str]]:
        return files([self.file_id])


class TextPart(Body):
    type: Literal["text"]
    text: MessageText


class ImageFile(Body):
    file_id: Id
    detail: Literal["auto", "low", "high"] | None = None

    def refs(self) -> list[tuple[str, str]]:
        return files([self.file_id])


class ImageFilePart(Body):
    type: Literal["image_file"]
    image_file: ImageFile


class ImageURL(Body):
    url: Annotated[str, Field(min_length=1, max_length=URL_CHARS)]
    detail: Literal["auto", "low", "high"] | None = None


class ImageURLPart(Body):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[Union[TextPart, ImageFilePart, ImageURLPart], Field(discriminator="type")]


Parts = Annotated[list[ContentPart], Field(min_length=1, max_length=PARTS_PER_MESSAGE)]


class _HasMetadata(Body):
    metadata: Metadata = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(v)


class MessageCreate(_HasMetadata):
    role: Literal["user", "assistant"]
    content: Union[MessageText, Parts]
    attachments: Annotated[list[Attachment], Field(max_length=ATTACHMENTS_PER_MESSAGE)] | None = None

    @field_validator("content")
    @classmethod
    def _text_cap(cls, content: str | list[Any]) -> str | list[Any]:
        if not isinstance(content, str):
            if sum(len(p.text) for p in content if isinstance(p, TextPart)) > MESSAGE_CHARS:
                raise ValueError(f"the text of a message can be at most {MESSAGE_CHARS} characters long.")
        return content

    def stored_content(self) -> list[dict[str, Any]]:
        if isinstance(self.content, str):
            return [{"type": "text", "text": {"value": self.content, "annotations": []}}]
        out: list[dict[str, Any]] = []
        for part in self.content:
            if isinstance(part, TextPart):
                out.append({"type": "text", "text": {"value": part.text, "annotations": []}})
            else:
                out.append(part.model_dump(exclude_none=True))
        return out


class MessageUpdate(_HasMetadata):
    pass


class _Sampling(_HasMetadata):
    model: ModelName | None = None
    instructions: Instructions | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None

    @field_validator("tools")
    @classmethod
    def _distinct_names(cls, tools: list[Any] | None) -> list[Any] | None:
        """The model sees every tool as a function: two of one name could not be told apart."""
        names = [t.function.name if t.type == "function" else t.type for t in tools or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tool names must be unique; used more than once: {', '.join(twice)}")
        return tools

    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    response_format: ResponseFormat | None = None
    # the installed SDK's own type: every value it declares is accepted, a new one as it ships
    reasoning_effort: ReasoningEffort = None


class AssistantCreate(_Sampling):
    model: ModelName
    name: Name | None = None
    description: Description | None = None
    tool_resources: ToolResources | None = None


class AssistantUpdate(_Sampling):
    name: Name | None = None
    description: Description | None = None
    tool_resources: ToolResources | None = None

    @field_validator("model")
    @classmethod
    def _model_kept(cls, v: str | None) -> str:
        """Omitted keeps the model; null would leave the assistant with none."""
        if v is None:
            raise ValueError("an assistant's model cannot be null.")
        return v


class ThreadCreate(_HasMetadata):
    messages: Annotated[list[MessageCreate], Field(max_length=MESSAGES_PER_REQUEST)] | None = None
    tool_resources: ToolResources | None = None


class ThreadUpdate(_HasMetadata):
    tool_resources: ToolResources | None = None


class RunParams(_Sampling):
    assistant_id: Id
    stream: bool | None = None
    max_prompt_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None


class RunCreate(RunParams):
    additional_instructions: Instructions | None = None
    additional_messages: Annotated[list[MessageCreate], Field(max_length=MESSAGES_PER_REQUEST)] | None = None


class ThreadAndRunCreate(RunParams):
    thread: ThreadCreate | None = None
    tool_resources: RunToolResources | None = None


class RunUpdate(_HasMetadata):
    pass


class ToolOutput(Body):
    tool_call_id: Annotated[str, Field(max_length=TOOL_CALL_ID_CHARS)]
    output: Annotated[str, Field(max_length=TOOL_OUTPUT_CHARS)]


class SubmitToolOutputs(Body):
    tool_outputs: Annotated[list[ToolOutput], Field(max_length=128)]
    stream: bool | None = None
