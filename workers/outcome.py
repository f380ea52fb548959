"""One model round's outcome as rows and run changes, and the stream events announcing them.

A round writes the assistant's text (a message and its message_creation step), then either its
tool calls (a tool_calls step; the run goes to requires_action) or the run's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.ids import now
from core.models import MESSAGES, STEPS, Message, RunStep, wire_of
from core.store import RunRow
from workers.rows import message_row, step_row
from workers.streaming import Turn, TurnIds, abandoned, annotations_delta, message_start, tools_start

Rows = list[tuple[Any, dict[str, Any]]]
Extras = dict[str, list[dict[str, Any]]]  # a message's image parts and text annotations


def _add(total: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """The run's usage after one more round; unknown (None) once any round's usage is."""
    unknown = more["prompt_tokens"] is None or (total is not None and total.get("prompt_tokens") is None)
    return {k: None if unknown else (total or {}).get(k, 0) + v for k, v in more.items()}


def _message(
    run: RunRow, ids: TurnIds, text: str, started: float, t: float, incomplete: bool, extras: Extras
) -> dict[str, Any]:
    part = {"type": "text", "text": {"value": text, "annotations": extras.get("annotations", [])}}
    return message_row(
        run,
        ids.message,
        started,
        content=[*extras.get("images", []), part],
        status="incomplete" if incomplete else "completed",
        completed_at=None if incomplete else t,
        incomplete_at=t if incomplete else None,
        incomplete_details={"reason": "max_tokens"} if incomplete else None,
    )


def _function(call: dict[str, str]) -> dict[str, Any]:
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": call["arguments"]},
    }


@dataclass
class Outcome:
    status: str
    rows: Rows
    values: dict[str, Any]

    @staticmethod
    def cut_short(run: RunRow, turn: Turn) -> str | None:
        """Why the round ends the run incomplete (its tool calls are dropped), if it does."""
        if turn.finish_reason == "length":
            return "max_completion_tokens"
        # with no count from the endpoint, the prompt was cut to max_prompt_tokens by estimate
        prompt = _add(run.usage, turn.usage)["prompt_tokens"]
        if run.max_prompt_tokens and prompt is not None and prompt > run.max_prompt_tokens:
            return "max_prompt_tokens"
        return None

    @classmethod
    def of(
        cls,
        run: RunRow,
        turn: Turn,
        started: float,
        ids: TurnIds,
        action_expiry: float,
        executed: dict[str, dict[str, Any]] | None = None,
        extras: Extras | None = None,
    ) -> Outcome:
        """`executed`: the round's built-in calls, run by the worker (by call id). With only those,
        the run stays in_progress (status "in_progress") for the next round."""
        executed = executed or {}
        total = _add(run.usage, turn.usage)
        t = now()
        reason = cls.cut_short(run, turn)
        rows: Rows = []
        if turn.text or not turn.calls:
            details: dict[str, Any] = {
                "type": "message_creation",
                "message_creation": {"message_id": ids.message},
            }
            step_usage = None if turn.calls else turn.usage  # a round's usage goes on its last step
            rows += [
                (MESSAGES, _message(run, ids, turn.text, started, t, reason is not None, extras or {})),
                (
                    STEPS,
                    step_row(
                        run,
                        ids.message_step,
                        started,
                        "message_creation",
                        details,
                        status="completed",
                        completed_at=t,
                        usage=step_usage,
                    ),
                ),
            ]
        values: dict[str, Any] = {"usage": total}
        if turn.calls and not reason:
            pending = [_function(c) for c in turn.calls if c["id"] not in executed]
            # function calls first, then the built-in ones (the order the stream announced them in)
            recorded = [
                _function(c) | {"function": _function(c)["function"] | {"output": None}}
                for c in turn.calls
                if c["id"] not in executed
            ] + [executed[c["id"]] for c in turn.calls if c["id"] in executed]
            details = {"type": "tool_calls", "tool_calls": recorded}
            if not pending:
                rows.append(
                    (
                        STEPS,
                        step_row(
                            run,
                            ids.tools_step,
                            started,
                            "tool_calls",
                            details,
                            status="completed",
                            completed_at=t,
                            usage=turn.usage,
                        ),
                    )
                )
                return cls("in_progress", rows, values)
            rows.append(
                (STEPS, step_row(run, ids.tools_step, started, "tool_calls", details, usage=turn.usage))
            )
            values |= {
                "required_action": {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {"tool_calls": pending},
                },
                "expires_at": t + action_expiry,
            }
            return cls("requires_action", rows, values)
        values |= {"completed_at": t} | ({"incomplete_details": {"reason": reason}} if reason else {})
        return cls("incomplete" if reason else "completed", rows, values)

    def events(self, run: RunRow, ids: TurnIds, started: float) -> list[tuple[str, str]]:
        """The round's objects as stored: announced first if the stream has not seen them yet."""
        events: list[tuple[str, str]] = []
        recorded = set()
        for table, row in self.rows:
            recorded.add(row["id"])
            if table is MESSAGES:
                events += message_start(run, ids, started)
                text = row["content"][-1]["text"]  # the text part follows the image parts
                if text["annotations"]:
                    events.append(annotations_delta(row["id"], len(row["content"]) - 1, text["annotations"]))
                name = (
                    "thread.message.completed"
                    if row["status"] == "completed"
                    else "thread.message.incomplete"
                )
                events.append((name, wire_of(Message, row).model_dump_json()))
            elif row["type"] == "message_creation":
                events.append(("thread.run.step.completed", wire_of(RunStep, row).model_dump_json()))
            else:
                events += tools_start(run, ids, started)
                if row["status"] == "completed":  # built-in calls, run by the worker
                    events.append(("thread.run.step.completed", wire_of(RunStep, row).model_dump_json()))
        if ids.tools_step in ids.announced and ids.tools_step not in recorded:
            # tool calls cut off by the token limit: announced while streaming, never recorded
            events += abandoned(run, ids, started, cancelled=True, error=None, only=(ids.tools_step,))
        return events
