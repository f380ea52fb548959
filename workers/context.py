"""What every part of a run's execution shares: the worker's Context, and `publish`.

Below both the run loop and the tools, so neither imports the other for these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.events import EventLog
from core.quotas import Counters, Quotas
from core.storage import Storage
from core.store import RunRow, RunStore
from workers.model_client import ModelClients

if TYPE_CHECKING:  # the sandbox (and Docker's client) load only where code runs
    from sandbox import Sandboxes

log = logging.getLogger("assistd.worker")
CANCELLED = "cancelled by the user"  # the reason a task is cancelled with when its run was cancelled


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine  # SQLAlchemy, for everything off the run store's path: tools, housekeeping
    store: RunStore
    clients: ModelClients
    owner: str
    events: EventLog
    storage: Storage | None = None  # file bytes, for the tools that read or write files
    sandboxes: Sandboxes | None = None  # where code_interpreter can run
    # the projects' rate limits (None: no project has any), and where their tokens are counted
    quotas: Quotas | None = None
    counters: Counters | None = None
    # runs whose own task has committed their end and may still be announcing it: not to be stopped
    ended: set[str] = field(default_factory=set)


async def publish(ctx: Context, run: RunRow, events: list[tuple[str, str]]) -> None:
    """Append to the run's event log; a log that cannot be written never fails the run."""
    try:
        await ctx.events.publish(run.id, events)
    except Exception:
        log.warning("run %s: could not publish %d event(s)", run.id, len(events), exc_info=True)
