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
typed parts, and every item gets a status, as OpenAI lists them (`GivenItem.wire`; the rows, the
references and the lists are api/item_rows.py's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator

from api.body import Body, Id, MessageText
from api.errors import BadRequest
from api.schemas import PARTS_PER_MESSAGE, TOOL_CALL_ID_CHARS, TOOL_OUTPUT_CHARS, URL_CHARS, files

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


class GivenItem(Body):
    kind: ClassVar[str]
    id: GivenId | None = None  # an item passed back may carry its old id; it is stored under a new one
    status: Status | None = None

    def body(self, path: str) -> dict[str, Any]:
        """The item's wire object but for its id, type and status."""
        raise NotImplementedError

    def wire(self, item_id: str, path: str) -> dict[str, Any]:
        return {"id": item_id, "type": self.kind} | self.body(path) | {"status": self.status or "completed"}


class InputMessage(GivenItem):
    kind = "message"
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer"]
    content: InputParts | MessageText

    def body(self, path: str) -> dict[str, Any]:
        content = self.content
        if isinstance(content, str):
            return {"role": self.role, "content": [{"type": "input_text", "text": content}]}
        return {"role": self.role, "content": parts(content, f"{path}.content")}


class AssistantMessage(GivenItem):
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


class FunctionCall(GivenItem):
    kind = "function_call"
    type: Literal["function_call"]
    call_id: CallId
    name: Annotated[str, Field(min_length=1, max_length=128)]
    arguments: ToolText

    def body(self, path: str) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "arguments": self.arguments}


class FunctionCallOutput(GivenItem):
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


class Reasoning(GivenItem):
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
    return kind if isinstance(kind, str) and kind in TAGS else "unsupported"


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
