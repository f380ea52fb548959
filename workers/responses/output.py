"""A response's output as the model's answer arrives: its items (reasoning, the message, function
calls) and, for a response whose events are published, the events that announce them.

Items get their output_index in the order they first appear; each is announced once
(`output_item.added`), filled by deltas, and closed (`output_item.done`) when the answer ends,
so the stored output and the announced items match one for one. An attempt that follows one
cut off (its worker died, or handed the response back) first closes the items the earlier
attempt left open, and numbers its own after them (`orphans`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.ids import new_id

Events = list[tuple[str, str]]


@dataclass
class Slot:
    """One output item being built."""

    item: dict[str, Any]
    chunks: list[str] = field(default_factory=list)  # its text, reasoning or arguments so far


class Output:
    def __init__(self, sequence: int, announce: bool, earlier: list[dict[str, Any]] | None = None) -> None:
        self.sequence = sequence  # the next event's sequence_number
        self.announce = announce  # make events (a streamed or background response)
        self.earlier = earlier or []  # an earlier attempt's items, which keep their output_index
        self.first_index = len(self.earlier)
        self.slots: list[Slot] = []
        self.reasoning: Slot | None = None
        self.message: Slot | None = None
        self.calls: dict[int, Slot] = {}  # by the call's index in the model's answer

    def event(self, kind: str, **fields: Any) -> tuple[str, str]:
        data = {"type": kind, "sequence_number": self.sequence} | fields
        self.sequence += 1
        return kind, json.dumps(data)

    def _open(self, item: dict[str, Any], *more: tuple[str, dict[str, Any]]) -> tuple[Slot, Events]:
        slot = Slot(item)
        self.slots.append(slot)
        if not self.announce:
            return slot, []
        index = self.first_index + len(self.slots) - 1
        events = [self.event("response.output_item.added", output_index=index, item=item)]
        events += [self.event(kind, output_index=index, **fields) for kind, fields in more]
        return slot, events

    def _index(self, slot: Slot) -> int:
        return self.first_index + self.slots.index(slot)

    def reasoning_delta(self, delta: str) -> Events:
        events: Events = []
        if self.reasoning is None:
            item = {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            self.reasoning, events = self._open(item)
        self.reasoning.chunks.append(delta)
        if self.announce:
            item_id, index = self.reasoning.item["id"], self._index(self.reasoning)
            events.append(
                self.event(
                    "response.reasoning_text.delta",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    delta=delta,
                )
            )
        return events

    def text_delta(self, delta: str) -> Events:
        events: Events = []
        if self.message is None:
            item_id = new_id("msg")
            item = {
                "id": item_id,
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self.message, events = self._open(
                item, ("response.content_part.added", {"item_id": item_id, "content_index": 0, "part": part})
            )
        self.message.chunks.append(delta)
        if self.announce:
            events.append(
                self.event(
                    "response.output_text.delta",
                    item_id=self.message.item["id"],
                    output_index=self._index(self.message),
                    content_index=0,
                    delta=delta,
                    logprobs=[],
                )
            )
        return events

    def call_delta(self, index: int, call_id: str | None, name: str | None, arguments: str) -> Events:
        events: Events = []
        slot = self.calls.get(index)
        if slot is None:
            item = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call_id or new_id("call"),  # an endpoint that sends none: the client needs one
                "name": name or "",
                "arguments": "",
            }
            slot, events = self._open(item)
            self.calls[index] = slot
        # some servers repeat the id and name in every chunk of a call: the first ones stand
        slot.item["name"] = slot.item["name"] or name or ""
        if arguments:
            slot.chunks.append(arguments)
            if self.announce:
                events.append(
                    self.event(
                        "response.function_call_arguments.delta",
                        item_id=slot.item["id"],
                        output_index=self._index(slot),
                        delta=arguments,
                    )
                )
        return events

    def close(self, incomplete: bool) -> tuple[list[dict[str, Any]], Events]:
        """This attempt's finished output items, and the events that close them. An answer cut
        short by the token limit leaves its message and its function calls (whose arguments may
        be cut) `incomplete`. The response's output is `earlier` followed by these."""
        items: list[dict[str, Any]] = []
        events: Events = []
        status = "incomplete" if incomplete else "completed"
        for slot in self.slots:
            index, text = self._index(slot), "".join(slot.chunks)
            item, kind = dict(slot.item), slot.item["type"]
            if kind == "message":
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                item |= {"status": status, "content": [part]}
                events += self._done_text(item["id"], index, text, part)
            elif kind == "reasoning":
                item |= {"status": "completed", "content": [{"type": "reasoning_text", "text": text}]}
                if self.announce:
                    at = {"item_id": item["id"], "output_index": index, "content_index": 0}
                    events.append(self.event("response.reasoning_text.done", **at, text=text))
            else:
                item |= {"status": status, "arguments": text}
                if self.announce:
                    at = {"item_id": item["id"], "output_index": index}
                    events.append(
                        self.event(
                            "response.function_call_arguments.done", **at, name=item["name"], arguments=text
                        )
                    )
            if self.announce:
                events.append(self.event("response.output_item.done", output_index=index, item=item))
            items.append(item)
        return items, events

    def _done_text(self, item_id: str, index: int, text: str, part: dict[str, Any]) -> Events:
        if not self.announce:
            return []
        at = {"item_id": item_id, "output_index": index, "content_index": 0}
        return [
            self.event("response.output_text.done", **at, text=text, logprobs=[]),
            self.event("response.content_part.done", **at, part=part),
        ]


def orphans(logged: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[int]]:
    """From an earlier attempt's events: every item it announced, in output_index order, as far as
    it got (those it never closed cut there and marked incomplete), and the indexes of those left
    open, which the next attempt closes before anything new. They stay in the response's output,
    at the places the stream gave them, so a client's accumulated stream and the stored response
    agree; they are not items of a conversation."""
    items: dict[int, dict[str, Any]] = {}
    texts: dict[int, list[str]] = {}
    open_ones: set[int] = set()
    for name, data in logged:
        event = json.loads(data)
        index = event.get("output_index")
        if index is None:
            continue
        if name == "response.output_item.added":
            items[index], texts[index] = event["item"], []
            open_ones.add(index)
        elif name == "response.output_item.done":
            items[index] = event["item"]
            open_ones.discard(index)
        elif name.endswith(".delta") and index in open_ones:
            texts[index].append(event.get("delta") or "")
    for index in open_ones:
        items[index] = _cut(items[index], "".join(texts[index]))
    return [items[i] for i in sorted(items)], sorted(open_ones)


def _cut(item: dict[str, Any], text: str) -> dict[str, Any]:
    """An item as far as its deltas got, marked incomplete."""
    if item["type"] == "message":
        return item | {
            "status": "incomplete",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
    if item["type"] == "reasoning":
        return item | {"status": "incomplete", "content": [{"type": "reasoning_text", "text": text}]}
    return item | {"status": "incomplete", "arguments": text}
