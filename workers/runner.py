"""One Runner per worker process: hundreds of runs in flight on one event loop.

A dramatiq message only claims its run and starts a task; the message is acknowledged once
the run is claimed (the database lease, not the message, keeps the run safe from then on).
Housekeeping on the same loop renews leases, notices cancellations, and sweeps: runs whose
owner died go back to the queue, lost queue messages are re-sent, and runs past their time
budget fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import dramatiq
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core import logs
from core.config import Settings
from core.db import async_engine
from core.events import event_log
from core.ids import new_id, now
from core.models import RUNS, STEPS, Run, RunStep, wire_of
from core.quotas import Quotas
from core.redis_client import async_client
from core.redis_counters import counters
from core.responses import RESPONSES
from core.storage import storage
from core.store import Claimed, ClaimedResponse, open_store
from workers import images, metrics
from workers import run_loop as runs
from workers.context import Context, publish
from workers.ingest.pipeline import sweep_ingestion
from workers.model_client import ModelClients
from workers.responses import housekeeping as responses
from workers.responses import loop as response_loop
from workers.responses.containers import end_gone_sessions
from workers.retention import retain

if TYPE_CHECKING:
    from sandbox import Sandboxes

log = logging.getLogger("assistd.worker")


def sandboxes(settings: Settings, owner: str) -> Sandboxes | None:
    """This worker's code interpreter sessions (started in the background: a worker without
    Docker still runs everything else, and fails only the runs that need code executed)."""
    try:
        from sandbox import SandboxConfig, Sandboxes
    except ImportError:  # the sandbox package's dependencies are not installed here
        log.warning("code interpreter disabled: the sandbox package cannot be loaded", exc_info=True)
        return None
    s = settings
    config = SandboxConfig(
        image=s.sandbox_image,
        runtime=s.sandbox_runtime,
        timeout_seconds=s.sandbox_timeout_seconds,
        memory_bytes=s.sandbox_memory_bytes,
        cpus=s.sandbox_cpus,
        pids=s.sandbox_pids,
        disk_bytes=s.sandbox_disk_bytes,
        output_bytes=s.sandbox_output_bytes,
        idle_seconds=s.sandbox_idle_seconds,
        pool_size=s.sandbox_pool_size,
        max_sessions=s.sandbox_max_sessions,
        max_project_sessions=s.sandbox_max_project_sessions,
        redis_url=s.redis_url,
        redis_client=async_client,
        namespace=s.redis_namespace,
        owner=owner,
    )
    return Sandboxes(config)


class Runner:
    def __init__(
        self, settings: Settings, enqueue: Callable[[str], None], backlog: Callable[[], int] = lambda: 0
    ) -> None:
        self.settings = settings
        metrics.configure(settings)
        self.enqueue = enqueue
        self.backlog = backlog
        # The run store serves the claims and rounds (on PostgreSQL with a pool of its own:
        # core/store/pg.py); SQLAlchemy's engine serves the rest: tools, housekeeping.
        size, pooler = settings.database_pool_size, settings.database_pooler
        self.engine = async_engine(settings.database_url, pool_size=size, pooler=pooler)
        store = open_store(settings.database_url, size=size, pooler=pooler)
        owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-8:]}"
        self.ctx = Context(
            settings,
            self.engine,
            store,
            ModelClients(settings),
            owner,
            event_log(),
            storage(settings),
            sandboxes(settings, owner),
        )
        quotas = Quotas(settings)
        if quotas.any:
            self.ctx.quotas, self.ctx.counters = quotas, counters(settings)
        self.slots = asyncio.Semaphore(settings.worker_concurrency)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        self._housekeeping = asyncio.create_task(self._housekeep())
        # a task of its own: a long pass must not hold up lease renewals and cancellations
        self._retention = asyncio.create_task(retain(self.engine, storage(settings), settings))
        self._sandboxes = asyncio.create_task(self.ctx.sandboxes.start()) if self.ctx.sandboxes else None

    async def room(self) -> int:
        """How many more jobs this runner could start now, once it can start one."""
        if self.slots.locked():
            async with self.slots:  # wait for a job to end; its slot is for the caller's fetch
                pass
        return self.slots._value

    async def start(self, run_id: str) -> None:
        """Claim `run_id` (a run's, or a response's: `resp_...`) and start it; returns as soon as
        it is ours (or not ours to run)."""
        if self.stopping:  # leave it to another worker
            raise dramatiq.Retry(delay=100)
        # the claim's lines carry the id; the task below starts with a copy of this context
        token = logs.JOB.set(logs.job(run_id))
        try:
            await self._start(run_id)
        finally:
            logs.JOB.reset(token)

    async def _start(self, run_id: str) -> None:
        await self.slots.acquire()
        try:
            driving = await self._claim(run_id)
        except BaseException:
            self.slots.release()
            raise
        if driving is None:
            self.slots.release()
            return
        self.ctx.ended.discard(run_id)  # claimed again (tool outputs came): running, not ending
        task = asyncio.create_task(driving)
        self.tasks[run_id] = task
        metrics.IN_FLIGHT.inc()
        task.add_done_callback(lambda done: self._finished(run_id, done))

    def _finished(self, run_id: str, task: asyncio.Task[None]) -> None:
        if self.tasks.get(run_id) is task:  # a later claim of the same run may have replaced it
            del self.tasks[run_id]
            self.ctx.ended.discard(run_id)
        self.slots.release()
        metrics.IN_FLIGHT.dec()

    async def _claim(self, job_id: str) -> Coroutine[None, None, None] | None:
        """What drives the job once claimed; None if it is not ours to run."""
        if responses.is_response(job_id):
            claimed_response = await response_loop.claim(self.ctx, job_id)
            return None if claimed_response is None else self._drive_response(claimed_response)
        claimed = await runs.claim(self.ctx, job_id)
        return None if claimed is None else self._drive(claimed)

    async def _drive_response(self, claimed: ClaimedResponse) -> None:
        response = claimed.response
        # the task's own context: set for the task's lifetime, nothing to reset
        logs.JOB.set(logs.job(response.id, response.project))
        try:
            # uploaded images inline (or as notes): the response loop builds its prompt from the items
            claimed = await images.for_response(
                self.ctx, claimed, self.ctx.clients.endpoint(response.model).vision
            )
            await response_loop.execute(self.ctx, claimed)
        except asyncio.CancelledError:
            log.info(
                "response %s: stopped (%s)", response.id, "handing back" if self.stopping else "cancelled"
            )
            values = {"status": "queued", "enqueued_at": now(), "owner": None, "lease_until": None}
            if self.stopping and await self.ctx.store.release(RESPONSES, response.id, self.ctx.owner, values):
                self.enqueue(response.id)
        except Exception as exc:
            log.exception("response %s crashed", response.id)
            await response_loop.crashed(
                self.ctx, response, f"Internal error while executing the response: {exc}"
            )

    async def _drive(self, claimed: Claimed) -> None:
        run = claimed.run
        logs.JOB.set(logs.job(run.id, run.project))  # the task's own context: nothing to reset
        try:
            await runs.execute(self.ctx, claimed)
        except asyncio.CancelledError:
            log.info("run %s: stopped (%s)", run.id, "handing back" if self.stopping else "cancelled")
            if self.stopping:
                if await runs.release(self.ctx, run.id):
                    self.enqueue(run.id)
            else:
                await runs.stop(self.ctx, run.id)
        except Exception as exc:
            log.exception("run %s crashed", run.id)
            await runs.fail(self.ctx, run, "server_error", f"Internal error while executing the run: {exc}")

    async def _housekeep(self) -> None:
        s = self.settings
        last_renew = last_sweep = 0.0
        while True:
            await asyncio.sleep(s.cancel_check_seconds)
            try:
                await self._check_cancelled()
                if now() - last_renew >= s.run_lease_seconds / 3:
                    last_renew = now()
                    await self._renew()
                if now() - last_sweep >= s.sweep_interval_seconds:
                    last_sweep = now()
                    await self.sweep()
            except Exception:
                log.warning("housekeeping failed; retrying", exc_info=True)

    async def _check_cancelled(self) -> None:
        """Stop tasks whose run was cancelled, expired, taken over or ended by another worker.

        A run whose own task has just committed its end is left alone: the task may still be
        announcing the end to the stream, and cancelling it there would lose the last events."""
        running = [run_id for run_id in self.tasks if run_id not in self.ctx.ended]
        ids = [i for i in running if responses.is_response(i)]
        for response_id in await responses.to_stop(self.engine, ids, self.ctx.owner) if ids else []:
            task = self.tasks.get(response_id)
            if task is not None and response_id not in self.ctx.ended:
                task.cancel()
        running = [i for i in running if not responses.is_response(i)]
        if not running:
            return
        c = RUNS.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(c.id, c.status).where(
                    c.id.in_(running), (c.status != "in_progress") | (c.owner != self.ctx.owner)
                )
            )
            for run_id, status in rows.all():
                task = self.tasks.get(run_id)
                if task is not None and run_id not in self.ctx.ended:
                    task.cancel(runs.CANCELLED if status == "cancelling" else None)

    async def _renew(self) -> None:
        if not self.tasks:
            return
        lease_until = now() + self.settings.run_lease_seconds
        if ids := [i for i in self.tasks if responses.is_response(i)]:
            await responses.renew(self.engine, ids, self.ctx.owner, lease_until)
        c = RUNS.c
        async with self.engine.begin() as conn:
            # only runs with a live task: a run we hold but no longer execute must be let go
            await conn.execute(
                update(RUNS)
                .where(
                    c.id.in_(list(self.tasks)),
                    c.owner == self.ctx.owner,
                    c.status.in_(("in_progress", "cancelling")),
                )
                .values(lease_until=now() + self.settings.run_lease_seconds)
            )

    async def sweep(self, *, orphans_now: bool = False) -> None:
        """Re-queue runs whose worker died, re-send lost messages, end runs past their budget.

        `orphans_now` treats every in_progress run as orphaned (embedded mode at start-up,
        where this process is the only worker there is).
        """
        t, c = now(), RUNS.c
        lapsed = c.lease_until.is_not(None) if orphans_now else c.lease_until < t
        stale = t if orphans_now else t - self.settings.requeue_after_seconds
        released = runs.RELEASED
        async with self.engine.begin() as conn:
            expired = await self._expire(conn, t)
            requeue = list(
                (
                    await conn.execute(
                        update(RUNS)
                        .where(c.status == "in_progress", lapsed)
                        .values(status="queued", enqueued_at=t, **released)
                        .returning(c.id)
                    )
                ).scalars()
            )
            cancelled = (
                await conn.execute(
                    update(RUNS)
                    .where(c.status == "cancelling", c.owner.is_not(None), lapsed)
                    .values(status="cancelled", cancelled_at=t, expires_at=None, **released)
                    .returning(*RUNS.c)
                )
            ).all()
            # A queued run whose id went out long ago may have lost its message (a Redis restart,
            # an API that died before enqueueing). While ids still wait in the queue, the run is
            # more likely just waiting its turn: re-sending it then only duplicates work.
            if orphans_now or not self._queue_busy():
                requeue += (
                    await conn.execute(
                        update(RUNS)
                        .where(
                            c.status.in_(("queued", "cancelling")), c.owner.is_(None), c.enqueued_at <= stale
                        )
                        .values(enqueued_at=t)
                        .returning(c.id)
                    )
                ).scalars()
        for row in cancelled:
            if row.stream:
                await publish(
                    self.ctx, row, [("thread.run.cancelled", wire_of(Run, row._mapping).model_dump_json())]
                )
        for row, step in expired:
            if row.stream:
                events = (
                    [("thread.run.step.expired", wire_of(RunStep, step._mapping).model_dump_json())]
                    if step
                    else []
                )
                events.append(("thread.run.expired", wire_of(Run, row._mapping).model_dump_json()))
                await publish(self.ctx, row, events)
        requeue += await responses.sweep(
            self.ctx, t, not orphans_now, stale, orphans_now or not self._queue_busy()
        )
        for run_id in requeue:
            self.enqueue(run_id)
        if requeue:
            log.info("sweeper re-sent %d run(s)", len(requeue))
        await sweep_ingestion(self.engine, self.settings, orphans_now=orphans_now)
        if ended := await end_gone_sessions(self.ctx, self.engine):
            log.info("ended the sandbox sessions of %d deleted or expired container(s)", ended)

    def _queue_busy(self) -> bool:
        try:
            return self.backlog() > 0
        except Exception:  # the broker is down: the ids would not go out anyway
            return True

    @staticmethod
    async def _expire(conn: AsyncConnection, t: float) -> list[tuple[Row[Any], Row[Any] | None]]:
        """Runs past `expires_at` become `expired`, with their pending step: a run left waiting in
        requires_action (its tool outputs never came), or one that ran out of time budget."""
        c = RUNS.c
        released = {"owner": None, "lease_until": None, "expires_at": None, "required_action": None}
        timed_out = {"code": "server_error", "message": "The run did not finish within its time budget."}
        out: list[tuple[Row[Any], Row[Any] | None]] = []
        for statuses, error in (
            (("requires_action",), None),
            (("queued", "in_progress", "cancelling"), timed_out),
        ):
            expired = (
                await conn.execute(
                    update(RUNS)
                    .where(c.status.in_(statuses), c.expires_at < t)
                    .values(status="expired", last_error=error, **released)
                    .returning(*RUNS.c)
                )
            ).all()
            if expired:
                steps = (
                    await conn.execute(
                        update(STEPS)
                        .where(STEPS.c.run_id.in_([r.id for r in expired]), STEPS.c.status == "in_progress")
                        .values(status="expired", expired_at=t)
                        .returning(*STEPS.c)
                    )
                ).all()
                by_run = {s.run_id: s for s in steps}
                out += [(r, by_run.get(r.id)) for r in expired]
        return out

    async def close(self) -> None:
        """Hand back every run in flight, then release connections."""
        self.stopping = True
        self._housekeeping.cancel()
        self._retention.cancel()
        tasks = list(self.tasks.values())
        log.info("handing back %d run(s)", len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.ctx.sandboxes is not None:
            await self.ctx.sandboxes.close()
        await self.ctx.clients.close()
        await self.ctx.events.aclose()
        if self.ctx.counters is not None:
            await self.ctx.counters.aclose()
        await self.ctx.store.close()
        await self.engine.dispose()
