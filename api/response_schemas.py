"""Request bodies of the Responses and Conversations APIs, validated as OpenAI validates them.

The checks that span parameters (`store` with `background`, `conversation` with
`previous_response_id`, `tool_choice` with `tools`) are `ResponseCreate.check`, run before
anything is looked up or written.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union, get_args

from fastapi import Query
from openai.types.responses import ResponseIncludable
from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from api.body import INT4_MAX, Body, Id, Instructions, ModelName
from api.errors import BadRequest
from api.items import InputItem, InputMessage
from api.schemas import FunctionDescription, _HasMetadata
from core.containers import MemoryLimit
from retrieval.filters import parse

ITEMS_PER_INPUT = 2048  # ours: the items of one request's `input`
ITEMS_PER_REQUEST = 20  # OpenAI: a conversation's items, at creation or added at once
IDENTIFIER_CHARS = 512  # ours: user, prompt_cache_key (the width of their columns)
SAFETY_IDENTIFIER_CHARS = 128  # OpenAI
INCLUDABLE: tuple[str, ...] = get_args(ResponseIncludable)
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_TYPES = ("function", "file_search", "code_interpreter")
VECTOR_STORES_PER_TOOL = 16  # ours (OpenAI documents none for the Responses tool)
FILES_PER_CONTAINER = 100  # ours, for `file_ids` of an `auto` container

Includes = Annotated[list[ResponseIncludable], Field(max_length=len(INCLUDABLE))]
Include = Query(None, alias="include[]")  # a query's `include[]`: what a read shows of built-in calls
Input = Annotated[list[InputItem], Field(max_length=ITEMS_PER_INPUT)] | str
Identifier = Annotated[str, Field(max_length=IDENTIFIER_CHARS)]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError("names must match ^[a-zA-Z0-9_-]{1,64}$.")
    return name


class FunctionTool(Body):
    type: str  # first: a tool of an unknown type is refused for its type, not for its fields
    name: str
    description: FunctionDescription | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("type")
    @classmethod
    def _function(cls, kind: str) -> str:
        if kind != "function":
            raise ValueError(
                f"the '{kind}' tool is not supported by this server; supported: {', '.join(TOOL_TYPES)}."
            )
        return kind

    _name = field_validator("name")(check_name)

    def stored(self) -> dict[str, Any]:
        tool = {"type": "function", "name": self.name, "parameters": self.parameters, "strict": self.strict}
        return tool | ({"description": self.description} if self.description is not None else {})


class HybridSearch(Body):
    embedding_weight: Annotated[float, Field(ge=0)]
    text_weight: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _some_weight(self) -> HybridSearch:
        if self.embedding_weight + self.text_weight <= 0:
            raise ValueError("embedding_weight and text_weight cannot both be 0.")
        return self


class FileSearchRanking(Body):
    ranker: Literal["auto", "default-2024-11-15"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    hybrid_search: HybridSearch | None = None


class FileSearchTool(Body):
    type: Literal["file_search"]
    vector_store_ids: Annotated[list[Id], Field(max_length=VECTOR_STORES_PER_TOOL)]
    filters: dict[str, Any] | None = None
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: FileSearchRanking | None = None

    @field_validator("filters")
    @classmethod
    def _filters(cls, filters: dict[str, Any] | None) -> dict[str, Any] | None:
        if filters is not None:
            parse(filters, "tools.filters")  # a malformed one is a 400 now, not a failed response
        return filters

    def refs(self) -> list[tuple[str, str]]:
        return [("vector store", i) for i in self.vector_store_ids]

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class NetworkPolicy(Body):
    type: Literal["disabled", "allowlist"]
    allowed_domains: list[str] | None = None

    @field_validator("type")
    @classmethod
    def _disabled(cls, kind: str) -> str:
        if kind != "disabled":
            raise ValueError(
                "code interpreter containers have no network here: only 'disabled' is supported."
            )
        return kind


class AutoContainer(Body):
    type: Literal["auto"]
    file_ids: Annotated[list[Id], Field(max_length=FILES_PER_CONTAINER)] | None = None
    memory_limit: MemoryLimit | None = None
    network_policy: NetworkPolicy | None = None

    def refs(self) -> list[tuple[str, str]]:
        return [("file", i) for i in self.file_ids or []]


class CodeInterpreterTool(Body):
    type: Literal["code_interpreter"]
    container: AutoContainer | Id  # the object first: its errors name the field

    def refs(self) -> list[tuple[str, str]]:
        return [("container", self.container)] if isinstance(self.container, str) else []

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _tool_type(tool: Any) -> str:
    """The union member that reads a tool: every type not built in goes to FunctionTool, whose
    `type` check names the field."""
    kind = tool.get("type") if isinstance(tool, dict) else getattr(tool, "type", None)
    return kind if kind in ("file_search", "code_interpreter") else "function"


Tool = Annotated[
    Union[
        Annotated[FunctionTool, Tag("function")],
        Annotated[FileSearchTool, Tag("file_search")],
        Annotated[CodeInterpreterTool, Tag("code_interpreter")],
    ],
    Discriminator(_tool_type),
]


class ConversationRef(Body):
    id: Id


class ToolChoiceFunction(Body):
    type: Literal["function"]
    name: Annotated[str, Field(max_length=64)]


class ToolChoiceBuiltIn(Body):
    type: Literal["file_search", "code_interpreter"]


ToolChoice = Union[
    ToolChoiceFunction, ToolChoiceBuiltIn, Literal["none", "auto", "required"]
]  # the objects first: their errors name the field


class TextFormatText(Body):
    type: Literal["text"]


class TextFormatJSONObject(Body):
    type: Literal["json_object"]


class TextFormatJSONSchema(Body):
    type: Literal["json_schema"]
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: FunctionDescription | None = None
    strict: bool | None = None

    _name = field_validator("name")(check_name)


TextFormat = Annotated[
    Union[TextFormatText, TextFormatJSONObject, TextFormatJSONSchema], Field(discriminator="type")
]


class TextConfig(Body):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None

    def stored(self) -> dict[str, Any]:
        text_format = self.format.model_dump(by_alias=True, exclude_none=True) if self.format else None
        return {"format": text_format or {"type": "text"}, "verbosity": self.verbosity}


class ReasoningConfig(Body):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponseContext(Body):
    """What a response's input is built from, shared by create and input_tokens."""

    input: Input | None = None
    instructions: Instructions | None = None
    previous_response_id: Id | None = None
    conversation: ConversationRef | Id | None = None  # the object first: its errors name the field
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    truncation: Literal["auto", "disabled"] | None = None

    @field_validator("tools")
    @classmethod
    def _distinct_names(cls, tools: list[Tool] | None) -> list[Tool] | None:
        # a built-in tool is named by its type: the model calls it as a function of that name
        names = [t.name if isinstance(t, FunctionTool) else t.type for t in tools or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tool names must be unique; used more than once: {', '.join(twice)}")
        return tools

    @property
    def conversation_id(self) -> str | None:
        conversation = self.conversation
        return conversation.id if isinstance(conversation, ConversationRef) else conversation

    def items(self) -> list[InputItem]:
        """The input as items: a string is one user message."""
        if isinstance(self.input, str):
            return [InputMessage(role="user", content=self.input)]
        return list(self.input or [])

    def check(self) -> None:
        """The rules that span parameters (400s in OpenAI's words where OpenAI has them)."""
        if self.previous_response_id is not None and self.conversation is not None:
            raise BadRequest(
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                param="conversation",
                code="mutually_exclusive_parameters",
            )
        check_tool_choice(self.tool_choice, self.tools or [])


def check_tool_choice(choice: ToolChoice | None, tools: list[Tool]) -> None:
    """A forced tool must be one of `tools`; `required` needs a tool to call."""
    if choice == "required" and not tools:
        raise BadRequest(
            "Invalid value for 'tool_choice': 'required' needs at least one tool in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    if isinstance(choice, ToolChoiceFunction) and choice.name not in {
        t.name for t in tools if isinstance(t, FunctionTool)
    }:
        raise BadRequest(
            f"Invalid value for 'tool_choice': the function '{choice.name}' is not in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    if isinstance(choice, ToolChoiceBuiltIn) and choice.type not in {t.type for t in tools}:
        raise BadRequest(
            f"Invalid value for 'tool_choice': the '{choice.type}' tool is not in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )


class ResponseCreate(ResponseContext, _HasMetadata):
    model: ModelName
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    max_output_tokens: Annotated[int, Field(ge=16, le=INT4_MAX)] | None = None
    max_tool_calls: Annotated[int, Field(ge=1, le=INT4_MAX)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    include: Includes | None = None
    user: Identifier | None = None
    safety_identifier: Annotated[str, Field(max_length=SAFETY_IDENTIFIER_CHARS)] | None = None
    prompt_cache_key: Identifier | None = None

    def check(self) -> None:
        super().check()
        if self.background and self.store is False:
            raise BadRequest(
                "Invalid value for 'store': a background response must be stored "
                "(store=false cannot be used with background=true).",
                param="store",
                code="invalid_value",
            )


class InputTokensCount(ResponseContext):
    model: ModelName | None = None
    personality: Annotated[str, Field(max_length=64)] | None = None


class ConversationCreate(_HasMetadata):
    items: Annotated[list[InputItem], Field(max_length=ITEMS_PER_REQUEST)] | None = None
    safety_identifier: Annotated[str, Field(max_length=SAFETY_IDENTIFIER_CHARS)] | None = None


class ConversationUpdate(_HasMetadata):
    metadata: dict[str, str] | None = Field()  # required: null clears it


class ConversationItemsCreate(Body):
    items: Annotated[list[InputItem], Field(min_length=1, max_length=ITEMS_PER_REQUEST)]
