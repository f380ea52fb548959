"""Items: what a response's `input` and a conversation's `items` hold, checked as OpenAI checks
them and stored as the wire objects `GET .../input_items` and the conversation items answer.

    message               user, system, developer: input_text, input_image, input_file parts
                          assistant: output_text and refusal parts
    function_call         a call the model made, passed back
    function_call_output  the client's answer to one
    reasoning             a reasoning item passed back
    item_reference        a stored item of the caller's project (its `type` may be left out)

Every item is stored under a fresh id (`msg_`, `fc_`, `fco_`, `rs_`): an item passed back with
the id it was given, or one a reference names, is already a row. String content becomes a list of
typed parts, and every item gets a status, as OpenAI lists them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

from fastapi.responses import Response
from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator
from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.body import Body, Id, MessageText
from api.errors import BadRequest, NotFound
from api.pagination import ListParams
from api.responses import listing
from api.schemas import PARTS_PER_MESSAGE, TOOL_CALL_ID_CHARS, TOOL_OUTPUT_CHARS, URL_CHARS, files
from core.ids import new_id, now, seq
from core.responses import ITEMS, Item
from core.store import RunStore

FILENAME_CHARS = 1024  # ours
PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
BUILT_IN_CALLS = ("file_search_call", "code_interpreter_call")  # output items of the built-in tools
Status = Literal["in_progress", "completed", "incomplete"]
CallId = Annotated[str, Field(min_length=1, max_length=TOOL_CALL_ID_CHARS)]
GivenId = Annotated[str, Field(max_length=TOOL_CALL_ID_CHARS)]  # an item's own id, passed back
Url = Annotated[str, Field(min_length=1)]
ToolText = Annotated[str, Field(max_length=TOOL_OUTPUT_CHARS)]


class InputText(Body):
    type: Literal["input_text"]
    text: MessageText

    def wire(self, path: str) -> dict[str, Any]:
        return {"type": "input_text", "text": self.text}


class InputImage(Body):
    type: Literal["input_image"]
    detail: Literal["low", "high", "auto", "original"] = "auto"
    image_url: Url | None = None  # a URL, or the image itself as a data: URL
    file_id: Id | None = None

    def refs(self) -> list[tuple[str, str]]:
        return files([self.file_id] if self.file_id else [])

    def wire(self, path: str) -> dict[str, Any]:
        if (self.image_url is None) == (self.file_id is None):
            raise BadRequest(
                f"Invalid '{path}': an input_image takes exactly one of 'image_url' and 'file_id'.",
                param=path,
                code="invalid_value",
            )
        check_url(self.image_url, f"{path}.image_url")
        return {
            "type": "input_image",
            "detail": self.detail,
            "file_id": self.file_id,
            "image_url": self.image_url,
        }


class InputFile(Body):
    type: Literal["input_file"]
    file_id: Id | None = None
    file_data: str | None = None  # the file's content (base64, or a data: URL)
    file_url: Url | None = None
    filename: Annotated[str, Field(min_length=1, max_length=FILENAME_CHARS)] | None = None
    detail: Literal["auto", "low", "high"] | None = None

    def refs(self) -> list[tuple[str, str]]:
        return files([self.file_id] if self.file_id else [])

    def wire(self, path: str) -> dict[str, Any]:
        given = [s for s in ("file_id", "file_data", "file_url") if getattr(self, s) is not None]
        if len(given) != 1:
            raise BadRequest(
                f"Invalid '{path}': an input_file takes exactly one of 'file_id', 'file_data' and 'file_url'.",
                param=path,
                code="invalid_value",
            )
        if self.file_data is not None and self.filename is None:
            raise BadRequest(
                f"Missing required parameter: '{path}.filename' (required with 'file_data').",
                param=f"{path}.filename",
                code="missing_required_parameter",
            )
        check_url(self.file_url, f"{path}.file_url")
        return self.model_dump(exclude_none=True)


def check_url(url: str | None, path: str) -> None:
    """A URL fits URL_CHARS; the data: URLs that carry the content itself are bounded by the body."""
    if url is not None and not url.startswith("data:") and len(url) > URL_CHARS:
        raise BadRequest(
            f"Invalid '{path}': string too long. Expected a string with maximum length {URL_CHARS}, "
            f"but got a string with length {len(url)} instead.",
            param=path,
            code="string_above_max_length",
        )


class OutputText(Body):
    type: Literal["output_text"]
    text: MessageText
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] | None = None

    def wire(self, path: str) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Refusal(Body):
    type: Literal["refusal"]
    refusal: MessageText

    def wire(self, path: str) -> dict[str, Any]:
        return self.model_dump()


InputPart = Annotated[Union[InputText, InputImage, InputFile], Field(discriminator="type")]
OutputPart = Annotated[Union[OutputText, Refusal], Field(discriminator="type")]
InputParts = Annotated[list[InputPart], Field(min_length=1, max_length=PARTS_PER_MESSAGE)]
OutputParts = Annotated[list[OutputPart], Field(min_length=1, max_length=PARTS_PER_MESSAGE)]


def parts(content: Sequence[InputPart | OutputPart], path: str) -> list[dict[str, Any]]:
    return [p.wire(f"{path}[{i}]") for i, p in enumerate(content)]


class _Item(Body):
    kind: ClassVar[str]
    id: GivenId | None = None  # an item passed back keeps the id it had; it is stored under a new one
    status: Status | None = None

    def body(self, path: str) -> dict[str, Any]:
        """The item's wire object but for its id, type and status."""
        raise NotImplementedError

    def wire(self, item_id: str, path: str) -> dict[str, Any]:
        return {"id": item_id, "type": self.kind} | self.body(path) | {"status": self.status or "completed"}


class InputMessage(_Item):
    kind = "message"
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer"]
    content: InputParts | MessageText

    def body(self, path: str) -> dict[str, Any]:
        content = self.content
        if isinstance(content, str):
            return {"role": self.role, "content": [{"type": "input_text", "text": content}]}
        return {"role": self.role, "content": parts(content, f"{path}.content")}


class AssistantMessage(_Item):
    kind = "message"
    type: Literal["message"] = "message"
    role: Literal["assistant"]
    content: OutputParts | MessageText
    phase: Literal["commentary", "final_answer"] | None = None

    def body(self, path: str) -> dict[str, Any]:
        content = self.content
        if isinstance(content, str):
            wired = [{"type": "output_text", "text": content, "annotations": []}]
        else:
            wired = parts(content, f"{path}.content")
        return {"role": "assistant", "content": wired} | ({"phase": self.phase} if self.phase else {})


class FunctionCall(_Item):
    kind = "function_call"
    type: Literal["function_call"]
    call_id: CallId
    name: Annotated[str, Field(min_length=1, max_length=128)]
    arguments: ToolText

    def body(self, path: str) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "arguments": self.arguments}


class FunctionCallOutput(_Item):
    kind = "function_call_output"
    type: Literal["function_call_output"]
    call_id: CallId
    output: InputParts | ToolText

    def body(self, path: str) -> dict[str, Any]:
        output = self.output
        wired = output if isinstance(output, str) else parts(output, f"{path}.output")
        return {"call_id": self.call_id, "output": wired}


class SummaryText(Body):
    type: Literal["summary_text"]
    text: MessageText


class ReasoningText(Body):
    type: Literal["reasoning_text"]
    text: MessageText


class Reasoning(_Item):
    kind = "reasoning"
    type: Literal["reasoning"]
    summary: Annotated[list[SummaryText], Field(max_length=PARTS_PER_MESSAGE)]
    content: Annotated[list[ReasoningText], Field(max_length=PARTS_PER_MESSAGE)] | None = None
    encrypted_content: ToolText | None = None

    def body(self, path: str) -> dict[str, Any]:
        return self.model_dump(include={"summary", "content", "encrypted_content"}, exclude_none=True)


class ItemReference(Body):
    type: Literal["item_reference"] | None = None
    id: Id


class Unsupported(Body):
    """An item of a type this server does not take: its `type` says why, its fields are not read."""

    model_config = ConfigDict(extra="allow")
    type: str

    @field_validator("type")
    @classmethod
    def _refused(cls, kind: str) -> str:
        if kind in BUILT_IN_CALLS:
            raise ValueError(
                f"'{kind}' items are not supported by this server yet: they come with the built-in tools."
            )
        supported = "', '".join((*PREFIX, "item_reference"))
        raise ValueError(f"'{kind}' is not an item type this server takes; supported: '{supported}'.")


TAGS = {*PREFIX, "item_reference"}


def _item_tag(value: Any) -> str:
    """The member an item is checked as: by `type`, and a message by its role (a message's
    `type` may be left out, and so may an item reference's)."""
    if not isinstance(value, dict):
        return "message"
    kind = value.get("type")
    if kind == "message" or (kind is None and "role" in value):
        return "assistant" if value.get("role") == "assistant" else "message"
    if kind is None:
        return "item_reference"
    return kind if kind in TAGS else "unsupported"


InputItem = Annotated[
    Union[
        Annotated[InputMessage, Tag("message")],
        Annotated[AssistantMessage, Tag("assistant")],
        Annotated[FunctionCall, Tag("function_call")],
        Annotated[FunctionCallOutput, Tag("function_call_output")],
        Annotated[Reasoning, Tag("reasoning")],
        Annotated[ItemReference, Tag("item_reference")],
        Annotated[Unsupported, Tag("unsupported")],
    ],
    Discriminator(_item_tag),
]


async def wire_items(
    store: RunStore, project: str, items: Sequence[InputItem], param: str
) -> list[dict[str, Any]]:
    """The items' wire objects under fresh ids, in order: every item's shape is checked first
    (the first bad one's 400), then each reference is looked up and copied (404 for an item not
    in the caller's project)."""
    out: list[dict[str, Any] | ItemReference] = []
    for i, item in enumerate(items):
        if isinstance(item, _Item):
            out.append(item.wire(new_item_id(item.kind), f"{param}[{i}]"))
        elif isinstance(item, ItemReference):
            out.append(item)
        # an Unsupported item was refused by its validator: none is ever built
    return [
        await copied(store, project, o, f"{param}[{i}]") if isinstance(o, ItemReference) else o
        for i, o in enumerate(out)
    ]


async def copied(store: RunStore, project: str, reference: ItemReference, path: str) -> dict[str, Any]:
    """The wire object of the item a reference names, under a fresh id."""
    row = await store.owned(ITEMS, reference.id, project)
    if row is None:
        raise NotFound(f"Item with id '{reference.id}' not found.", param=f"{path}.id")
    return dict(row.data) | {"id": new_item_id(row.data["type"])}


def new_item_id(kind: str) -> str:
    return new_id(PREFIX.get(kind, "item"))


def item_rows(
    project: str,
    wired: list[dict[str, Any]],
    *,
    response_id: str | None = None,
    conversation_id: str | None = None,
) -> list[dict[str, Any]]:
    """Column values of new items (input items of a response, or items of a conversation), in order."""
    created = now()
    return [
        {
            "id": data["id"],
            "project": project,
            "seq": seq(),
            "created_at": created,
            "type": data["type"],
            "response_id": response_id,
            "output": False,
            "conversation_id": conversation_id,
            "data": data,
        }
        for data in wired
    ]


@dataclass
class Wired:
    """A stored item's wire object, as `listing` serialises it."""

    id: str
    data: dict[str, Any]

    def model_dump_json(self) -> str:
        return json.dumps(self.data)


def listed(rows: Sequence[dict[str, Any]]) -> list[Wired]:
    """New items' rows as `listing` takes them."""
    return [Wired(r["id"], r["data"]) for r in rows]


def estimate_tokens(text: str) -> int:
    """workers/prompt.py's rule: about four characters a token (no tokenizer is at hand)."""
    return len(text) // 4 + 1


def count_tokens(instructions: str | None, items: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """The input tokens of a prompt, estimated as a run's prompt is (workers/prompt.py): a
    message's text, 4 per message and 85 per image or file; other items and the tool definitions
    by their JSON."""
    tokens = estimate_tokens(instructions) + 4 if instructions else 0
    tokens += estimate_tokens(json.dumps(tools)) if tools else 0
    for item in items:
        if item.get("type") != "message":
            tokens += estimate_tokens(
                json.dumps({k: v for k, v in item.items() if k not in ("id", "status")})
            )
            continue
        content = item.get("content") or []
        texts = [p.get("text") or p.get("refusal") or "" for p in content if "text" in p or "refusal" in p]
        tokens += sum(estimate_tokens(t) for t in texts) + 4 + 85 * (len(content) - len(texts))
    return tokens


async def page_items(session: AsyncSession, params: ListParams, *where: ColumnElement[bool]) -> Response:
    """One page of the items matching `where`, ordered by `seq` (api/pagination.py's rules)."""
    seq_ = col(Item.seq)
    query = select(Item).where(*where)
    backwards = False
    for cursor, name in ((params.after, "after"), (params.before, "before")):
        if cursor is None:
            continue
        cursor_seq = (await session.exec(select(seq_).where(col(Item.id) == cursor, *where))).first()
        if cursor_seq is None:
            raise BadRequest(f"Invalid '{name}': no object with id '{cursor}' in this list.", param=name)
        ascending = (params.order == "asc") == (name == "after")
        query = query.where(seq_ > cursor_seq if ascending else seq_ < cursor_seq)
        backwards = backwards or name == "before"
    ascending = (params.order == "asc") != backwards
    query = query.order_by(seq_.asc() if ascending else seq_.desc()).limit(params.limit + 1)
    rows = list((await session.exec(query)).all())
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    if backwards:
        rows.reverse()
    return listing([Wired(r.id, r.data) for r in rows], has_more)
