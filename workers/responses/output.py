"""A response's output as the model's answer arrives: its items (reasoning, messages, function
calls, built-in tool calls) and, for a response whose events are published, the events that
announce them.

Items get their output_index in the order they first appear; each is announced once
(`output_item.added`), filled by deltas, and closed (`output_item.done`) when its round or the
answer ends, so the stored output and the announced items match one for one. A call of a
built-in tool (the model calls `code_interpreter` or `file_search` as a function) becomes a
`code_interpreter_call` or `file_search_call` item, closed by the tool that runs it
(workers/responses/tools.py). An attempt that follows one cut off (its worker died, or handed
the response back) first closes the items the earlier attempt left open, and numbers its own
after them (`orphans`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.ids import new_id
from core.responses import shown
from workers.responses.citations import Citations

Events = list[tuple[str, str]]
BUILT_IN = {"code_interpreter": ("code_interpreter_call", "ci"), "file_search": ("file_search_call", "fs")}


@dataclass
class Slot:
    """One output item being built."""

    item: dict[str, Any]
    chunks: list[str] = field(default_factory=list)  # its text, reasoning or arguments so far
    call_id: str = ""  # a call's id in the chat-completions exchange
    name: str = ""  # a call's function name (a built-in tool's type)
    done: bool = False
    pending: str = ""  # a message's text held back: it may be the start of a citation marker
    annotations: list[dict[str, Any]] = field(default_factory=list)


class Output:
    def __init__(
        self,
        sequence: int,
        announce: bool,
        earlier: list[dict[str, Any]] | None = None,
        built_in: frozenset[str] = frozenset(),
        include: list[str] | None = None,
    ) -> None:
        self.sequence = sequence  # the next event's sequence_number
        self.announce = announce  # make events (a streamed or background response)
        self.earlier = earlier or []  # an earlier attempt's items, which keep their output_index
        self.first_index = len(self.earlier)
        self.built_in = built_in  # the built-in tools' function names the model may call
        self.include = include  # what the client asked to see of built-in calls (events as reads)
        self.citations = Citations()  # what the answer's text may cite: search results, files written
        self.slots: list[Slot] = []
        self.reasoning: Slot | None = None
        self.message: Slot | None = None
        self.calls: dict[int, Slot] = {}  # by the call's index in the model's answer, this round

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
        slot = self.message
        # a file_search result's marker (【0:1†notes.md】) becomes a file_citation where it stood
        text, slot.pending = self.citations.hold(slot.pending + delta)
        return events + self._emit_text(slot, text)

    def _emit_text(self, slot: Slot, text: str) -> Events:
        events: Events = []
        for piece, annotation in self.citations.split(text, sum(map(len, slot.chunks))):
            if piece:
                slot.chunks.append(piece)
                if self.announce:
                    events.append(
                        self.event(
                            "response.output_text.delta",
                            item_id=slot.item["id"],
                            output_index=self._index(slot),
                            content_index=0,
                            delta=piece,
                            logprobs=[],
                        )
                    )
            if annotation is not None:
                events += self._annotate(slot, annotation)
        return events

    def _annotate(self, slot: Slot, annotation: dict[str, Any]) -> Events:
        slot.annotations.append(annotation)
        if not self.announce:
            return []
        return [
            self.event(
                "response.output_text.annotation.added",
                item_id=slot.item["id"],
                output_index=self._index(slot),
                content_index=0,
                annotation_index=len(slot.annotations) - 1,
                annotation=annotation,
            )
        ]

    def call_delta(self, index: int, call_id: str | None, name: str | None, arguments: str) -> Events:
        events: Events = []
        slot = self.calls.get(index)
        if slot is None:
            chat_id = call_id or new_id("call")  # an endpoint that sends none: the client needs one
            if name in self.built_in:
                kind, prefix = BUILT_IN[name]
                item: dict[str, Any] = {"id": new_id(prefix), "type": kind, "status": "in_progress"}
                if kind == "code_interpreter_call":
                    item |= {"code": "", "container_id": "", "outputs": None}
                else:
                    item |= {"queries": [], "results": None}
                more = [(f"response.{kind}.in_progress", {"item_id": item["id"]})]
            else:
                item = {
                    "id": new_id("fc"),
                    "type": "function_call",
                    "status": "in_progress",
                    "call_id": chat_id,
                    "name": name or "",
                    "arguments": "",
                }
                more = []
            slot, events = self._open(item, *more)
            slot.call_id, slot.name = chat_id, name or ""
            self.calls[index] = slot
        # some servers repeat the id and name in every chunk of a call: the first ones stand
        slot.name = slot.name or name or ""
        if slot.item["type"] == "function_call":
            slot.item["name"] = slot.name
        if arguments:
            slot.chunks.append(arguments)
            if self.announce and slot.item["type"] == "function_call":
                events.append(
                    self.event(
                        "response.function_call_arguments.delta",
                        item_id=slot.item["id"],
                        output_index=self._index(slot),
                        delta=arguments,
                    )
                )
        return events

    def end_round(self) -> tuple[list[Slot], Events]:
        """The round's calls, in the model's order, and the events that close its reasoning and
        message; the next round's text opens new items."""
        calls = [self.calls[i] for i in sorted(self.calls)]
        events = self._close_slots([s for s in (self.reasoning, self.message) if s is not None], "completed")
        self.reasoning, self.message, self.calls = None, None, {}
        return calls, events

    def at(self, slot: Slot, kind: str, **fields: Any) -> Events:
        """An event about `slot`'s item (a built-in call's progress)."""
        if not self.announce:
            return []
        return [self.event(kind, item_id=slot.item["id"], output_index=self._index(slot), **fields)]

    def finish(self, slot: Slot, item: dict[str, Any]) -> Events:
        """Close a built-in call's item as its tool left it."""
        slot.item, slot.done = item, True
        if not self.announce:
            return []
        shown_item = shown([item], self.include)[0]  # results the client did not ask for stay home
        return [self.event("response.output_item.done", output_index=self._index(slot), item=shown_item)]

    def close(self, incomplete: bool) -> tuple[list[dict[str, Any]], Events]:
        """This attempt's output items, and the events that close those still open. An answer cut
        short by the token limit leaves its message and its function calls (whose arguments may
        be cut) `incomplete`. The response's output is `earlier` followed by these."""
        events = self._close_slots(
            [s for s in self.slots if not s.done], "incomplete" if incomplete else "completed"
        )
        return [slot.item for slot in self.slots], events

    def _close_slots(self, slots: list[Slot], status: str) -> Events:
        events: Events = []
        for slot in slots:
            if slot.pending:  # held back for a marker that never closed: it was text
                events += self._emit_text(slot, slot.pending)
                slot.pending = ""
            index, text = self._index(slot), "".join(slot.chunks)
            item, kind = dict(slot.item), slot.item["type"]
            slot.done = True
            if kind == "message":
                for annotation in self.citations.file_links(text):  # links to files the code wrote
                    events += self._annotate(slot, annotation)
                part = {"type": "output_text", "text": text, "annotations": slot.annotations, "logprobs": []}
                item |= {"status": status, "content": [part]}
                events += self._done_text(item["id"], index, text, part)
            elif kind == "reasoning":
                item |= {"status": "completed", "content": [{"type": "reasoning_text", "text": text}]}
                if self.announce:
                    at = {"item_id": item["id"], "output_index": index, "content_index": 0}
                    events.append(self.event("response.reasoning_text.done", **at, text=text))
            elif kind == "function_call":
                item |= {"status": status, "arguments": text}
                if self.announce:
                    at = {"item_id": item["id"], "output_index": index}
                    events.append(
                        self.event(
                            "response.function_call_arguments.done", **at, name=item["name"], arguments=text
                        )
                    )
            else:  # a built-in call its tool never ran (the response failed, or was cut short)
                item |= {"status": "incomplete"}
            slot.item = item
            if self.announce:
                events.append(self.event("response.output_item.done", output_index=index, item=item))
        return events

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
    if item["type"] == "function_call":
        return item | {"status": "incomplete", "arguments": text}
    return item | {"status": "incomplete"}
