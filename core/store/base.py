"""The run store's interface and the row types both backends return (see core/store/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Table


class RunRow(Protocol):
    """A run's columns as either backend reads them (a SQLAlchemy `Row` or a `pg.Record`)."""

    @property
    def _mapping(self) -> Mapping[Any, Any]: ...
    @property
    def id(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def thread_id(self) -> str: ...
    @property
    def assistant_id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def stream(self) -> bool: ...
    @property
    def attempts(self) -> int: ...
    @property
    def created_at(self) -> float: ...
    @property
    def enqueued_at(self) -> float | None: ...
    @property
    def instructions(self) -> str: ...
    @property
    def tools(self) -> list[dict[str, Any]] | None: ...
    @property
    def tool_choice(self) -> str | dict[str, Any] | None: ...
    @property
    def tool_resources(self) -> dict[str, Any] | None: ...
    @property
    def usage(self) -> dict[str, Any] | None: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def response_format(self) -> str | dict[str, Any] | None: ...
    @property
    def reasoning_effort(self) -> str | None: ...
    @property
    def parallel_tool_calls(self) -> bool: ...
    @property
    def truncation_strategy(self) -> dict[str, Any] | None: ...
    @property
    def max_prompt_tokens(self) -> int | None: ...
    @property
    def max_completion_tokens(self) -> int | None: ...


class MessageRow(Protocol):
    """A thread message as a prompt reads it."""

    @property
    def id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> list[dict[str, Any]]: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def attachments(self) -> list[dict[str, Any]] | None: ...


class StepRow(Protocol):
    """A run step as a prompt replays it."""

    @property
    def type(self) -> str: ...
    @property
    def step_details(self) -> dict[str, Any]: ...


class ResponseRow(Protocol):
    """A response's columns as either backend reads them."""

    @property
    def _mapping(self) -> Mapping[Any, Any]: ...
    @property
    def id(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def instructions(self) -> str | None: ...
    @property
    def tools(self) -> list[dict[str, Any]] | None: ...
    @property
    def tool_choice(self) -> str | dict[str, Any] | None: ...
    @property
    def parallel_tool_calls(self) -> bool: ...
    @property
    def max_output_tokens(self) -> int | None: ...
    @property
    def max_tool_calls(self) -> int | None: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def text_format(self) -> dict[str, Any] | None: ...
    @property
    def include(self) -> list[str] | None: ...
    @property
    def truncation(self) -> str: ...
    @property
    def reasoning(self) -> dict[str, Any] | None: ...
    @property
    def store(self) -> bool: ...
    @property
    def background(self) -> bool: ...
    @property
    def stream(self) -> bool: ...
    @property
    def previous_response_id(self) -> str | None: ...
    @property
    def conversation_id(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def created_at(self) -> float: ...
    @property
    def enqueued_at(self) -> float | None: ...


@dataclass
class ClaimedResponse:
    """A response this worker owns, with its context: the wire objects of the items before its
    own (its previous responses' or its conversation's), then its input items, in order."""

    response: ResponseRow
    items: list[dict[str, Any]]


@dataclass
class Claimed:
    """A run this worker owns, with what its prompt is built from."""

    run: RunRow
    thread: list[MessageRow]
    steps: list[StepRow]


class PageParams(Protocol):
    """A list request's cursor (the API's ListParams): OpenAI's limit, order, after, before."""

    @property
    def limit(self) -> int: ...
    @property
    def order(self) -> str: ...
    @property
    def after(self) -> str | None: ...
    @property
    def before(self) -> str | None: ...


def after_cursor(params: PageParams, name: str) -> bool:
    """Whether rows past the `after` / `before` cursor have a greater `seq` than it."""
    return (params.order == "asc") == (name == "after")


def listed_ascending(params: PageParams) -> bool:
    """Whether a page is read in ascending `seq` (a `before` page is read backwards, then turned)."""
    return (params.order == "asc") != (params.before is not None)


def turned(rows: list[Any], params: PageParams) -> tuple[list[Any], bool]:
    """A page read with one row more than its limit: its rows in the list's order, and whether
    more follow."""
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    if params.before is not None:
        rows.reverse()
    return rows, has_more


Inserts = list[tuple[Table, dict[str, Any]]]  # rows written with a lifecycle write, in order
Chars = Callable[[RunRow], int]  # how much of the thread's newest content a run's prompt could hold


class RunStore(Protocol):
    async def owned(self, table: Table, object_id: str, project: str) -> Any | None:
        """The row of `table` with this id in the caller's project."""

    async def owned_ids(self, table: Table, ids: list[str], project: str) -> set[str]:
        """Which of these ids name rows of `table` in the caller's project."""

    async def insert(self, inserts: list[tuple[Table, list[dict[str, Any]]]]) -> None:
        """Insert every group of rows: all of them or none (Conflict if a unique index refused one)."""

    async def insert_into_thread(
        self, thread_id: str, project: str, inserts: list[tuple[Table, list[dict[str, Any]]]], *, idle: bool
    ) -> bool:
        """`insert` only if the thread is the project's (and, if `idle`, no run is active on
        it), in one statement; False if not, and nothing is written."""

    async def active_run(self, thread_id: str) -> str | None:
        """The id of the thread's queued, running, waiting or cancelling run, if it has one."""

    async def page(self, table: Table, where: dict[str, Any], params: PageParams) -> tuple[list[Any], bool]:
        """One page of the rows of `table` whose columns equal `where`, in the list's order
        (by `seq`), and whether more follow. BadCursor if `after` or `before` names no such row."""

    async def claim_run(
        self, run_id: str, owner: str, lease_until: float, t: float, chars: Chars
    ) -> tuple[Claimed | None, RunRow | None]:
        """Move a queued run to in_progress under `owner`'s lease, with its thread's newest
        messages (up to `chars(run)` characters of content before the oldest) and, once a round
        was recorded, its steps. (None, the run) when it was cancelled while queued: it is
        cancelled now. (None, None) when it is not ours to run."""

    async def reload_run(self, run_id: str, owner: str, chars: Chars) -> Claimed | None:
        """The run `owner` holds in_progress, its thread and its steps, as they stand."""

    async def finish(
        self, table: Table, row_id: str, owner: str, values: dict[str, Any], inserts: Inserts
    ) -> bool:
        """Set `values` and insert `inserts` only if `owner` holds the row in_progress; False if
        it lost the row (and nothing is written)."""

    async def stop(self, table: Table, row_id: str, owner: str, values: dict[str, Any]) -> Any | None:
        """A row `owner` holds in cancelling takes `values` (its cancel) and is let go; the row,
        or None if it was not cancelling under `owner`."""

    async def release(self, table: Table, row_id: str, owner: str, values: dict[str, Any]) -> bool:
        """A row `owner` holds in_progress takes `values` (queued again) and is let go."""

    async def claim_response(
        self, response_id: str, owner: str, lease_until: float, t: float
    ) -> ClaimedResponse | None:
        """Move a queued response to in_progress under `owner`'s lease, with its context."""

    async def finish_response(
        self,
        response_id: str,
        owner: str,
        values: dict[str, Any],
        outputs: list[dict[str, Any]],
        conversation_id: str | None,
    ) -> bool:
        """End a response `owner` holds in_progress: `values` on its row, its output item rows
        inserted and, on a conversation, its input and output items added to it; all or nothing.
        False if it lost the response."""

    async def cancel_response(self, response_id: str, t: float) -> ResponseRow | None:
        """A queued or in_progress response becomes cancelled and is let go; None if it had ended."""

    async def forget_response(self, response_id: str) -> None:
        """Delete a response and its items that belong to no conversation (`store: false`)."""

    async def close(self) -> None: ...
