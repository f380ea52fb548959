"""Tables of the Responses and Conversations APIs.

A response is a job like a run: queued by the API, claimed by a worker under a lease, ended by
one guarded write (core/store). Its items (input messages, function calls and their outputs,
the model's messages and reasoning) are rows of `items`, each holding its wire object as JSON:
a response's input and output are its items, and a conversation is the items given its id, in
`seq` order. A response on a conversation adds its items to it only when it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openai.types.conversations import Conversation as WireConversation
from openai.types.responses import Response as WireResponse
from sqlalchemy import Index, String, text
from sqlmodel import Field, SQLModel

from core.ids import new_id, now
from core.models import _json, _meta, _seq, table_of

ACTIVE_RESPONSE_STATUSES = ("queued", "in_progress")


class Response(SQLModel, table=True):
    __tablename__ = "responses"
    __table_args__ = (
        Index("ix_responses_status", "status"),
        # One response at a time on a conversation (OpenAI answers 400 conversation_locked).
        Index(
            "ux_responses_one_active",
            "conversation_id",
            unique=True,
            sqlite_where=text("status IN ('queued','in_progress') AND conversation_id IS NOT NULL"),
            postgresql_where=text("status IN ('queued','in_progress') AND conversation_id IS NOT NULL"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id("resp"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    status: str = Field(default="queued", sa_type=String(16))
    model: str
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = _json()
    tool_choice: Any = _json()
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text_format: dict[str, Any] | None = _json()  # `text`: {"format": ..., "verbosity": ...}
    truncation: str = Field(default="disabled", max_length=16)
    reasoning: dict[str, Any] | None = _json()
    include: list[str] | None = _json()
    user: str | None = Field(default=None, max_length=512)
    safety_identifier: str | None = Field(default=None, max_length=512)
    prompt_cache_key: str | None = Field(default=None, max_length=512)
    meta: dict[str, str] | None = _meta()
    store: bool = True
    background: bool = False
    stream: bool = False
    previous_response_id: str | None = Field(default=None, max_length=64, index=True)
    conversation_id: str | None = Field(default=None, max_length=64)
    output: list[dict[str, Any]] | None = _json()  # the output items' wire objects, once it ends
    usage: dict[str, Any] | None = _json()
    error: dict[str, Any] | None = _json()
    incomplete_details: dict[str, Any] | None = _json()
    completed_at: float | None = None
    expires_at: float | None = None
    # execution bookkeeping, never on the wire
    owner: str | None = Field(default=None, max_length=128)
    lease_until: float | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    attempts: int = 0

    def to_openai(self) -> WireResponse:
        return WireResponse.model_validate(wire_response(self))


def wire_response(r: Any) -> dict[str, Any]:
    """A response row (model, Core row or namespace of its columns) as OpenAI's JSON object."""
    text_config = r.text_format or {"format": {"type": "text"}}
    return {
        "id": r.id,
        "object": "response",
        "created_at": int(r.created_at),
        "status": r.status,
        "background": r.background,
        "completed_at": None if r.completed_at is None else int(r.completed_at),
        "conversation": {"id": r.conversation_id} if r.conversation_id else None,
        "error": r.error,
        "incomplete_details": r.incomplete_details,
        "instructions": r.instructions,
        "max_output_tokens": r.max_output_tokens,
        "max_tool_calls": r.max_tool_calls,
        "metadata": (r.meta if hasattr(r, "meta") else r.metadata) or {},  # a model, or a Core row
        "model": r.model,
        "output": shown(r.output or [], r.include),
        "parallel_tool_calls": r.parallel_tool_calls,
        "previous_response_id": r.previous_response_id,
        "prompt_cache_key": r.prompt_cache_key,
        "reasoning": r.reasoning or {"effort": None, "summary": None},
        "safety_identifier": r.safety_identifier,
        "store": r.store,
        "temperature": r.temperature,
        "text": text_config,
        "tool_choice": r.tool_choice or "auto",
        "tools": r.tools or [],
        "top_p": r.top_p,
        "truncation": r.truncation,
        "usage": r.usage,
        "user": r.user,
    }


# what an item keeps and shows only when asked to (`include`): a built-in call's full results
DETAILS = {"code_interpreter_call": "outputs", "file_search_call": "results"}


def shown(items: list[dict[str, Any]], include: Sequence[str] | None) -> list[dict[str, Any]]:
    """Items as a request with this `include` sees them: a code_interpreter_call's outputs and a
    file_search_call's results are null unless included (they are always stored)."""
    wanted = set(include or ())
    out = []
    for item in items:
        field = DETAILS.get(item.get("type", ""))
        if field is not None and f"{item['type']}.{field}" not in wanted:
            item = item | {field: None}
        out.append(item)
    return out


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_project_seq", "project", "seq"),)

    id: str = Field(default_factory=lambda: new_id("conv"), primary_key=True, max_length=64)
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    meta: dict[str, str] | None = _meta()

    def to_openai(self) -> WireConversation:
        return WireConversation.model_validate(
            {
                "id": self.id,
                "object": "conversation",
                "created_at": int(self.created_at),
                "metadata": self.meta or {},
            }
        )


class Item(SQLModel, table=True):
    """One input or output item: its wire object in `data` (id and type included)."""

    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_response_seq", "response_id", "seq"),
        Index("ix_items_conversation_seq", "conversation_id", "seq"),
    )

    id: str = Field(primary_key=True, max_length=64)  # msg_..., fc_..., fco_..., rs_...
    project: str = Field(max_length=128)
    seq: int = _seq()
    created_at: float = Field(default_factory=now)
    type: str = Field(max_length=32)
    response_id: str | None = Field(default=None, max_length=64)  # the response it is input or output of
    output: bool = False  # an output item of `response_id` (else one of its input items)
    conversation_id: str | None = Field(default=None, max_length=64)  # set once it belongs to one
    data: dict[str, Any] = _json()


RESPONSES, CONVERSATIONS, ITEMS = table_of(Response), table_of(Conversation), table_of(Item)


# OpenAI's words for an input past the model's window with truncation disabled: a failed
# response with this message; a plain create answers it as a 400 context_length_exceeded.
CONTEXT_TOO_LONG = (
    "Your input exceeds the context window of this model. Please adjust your input and try again."
)
