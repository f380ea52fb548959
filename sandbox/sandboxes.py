"""Sandboxes: stateful code execution sessions in Docker containers, one per session key."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import posixpath
import time
from collections.abc import Sequence
from typing import Any

import docker.errors
import requests.exceptions
from redis.exceptions import RedisError

from sandbox.config import SandboxConfig
from sandbox.engine import DATA_DIR, Engine
from sandbox.errors import Died, Gone, ReplyTooLarge, SandboxLimit, SandboxUnavailable
from sandbox.models import Execution, InputFile, OutputFile
from sandbox.pool import Pool
from sandbox.reaper import reap
from sandbox.registry import MemoryRegistry, RedisRegistry, Registry, Session

log = logging.getLogger("assistd.sandbox")

GRACE_SECONDS = 6.0  # past the timeout, the runner had its chance to interrupt (or replace) the code
KEPT = "files in /mnt/data are kept"
CREATING = "@create"  # the registry lock held while a new session is counted and registered
HEARTBEAT_SECONDS = 10.0
RECHECK_SECONDS = 5.0  # how often an unavailable engine is looked at again
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


class Sandboxes:
    """Code interpreter sessions for the worker: `await execute(thread_id, code, files)`.

    A session is a container whose main process is a long-lived interpreter (image/runner.py),
    so variables, imports and /mnt/data persist between executions; it is found through the
    registry (Redis when configured) by any process on the same engine. New sessions take a warm
    container from the pool; a background task beats this process's heartbeat and reaps.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.engine = Engine(config)
        self.registry: Registry = (
            RedisRegistry(config.redis_client(config.redis_url), config.namespace, config.idle_seconds)
            if config.redis_url
            else MemoryRegistry(config.idle_seconds)
        )
        self.pool = Pool(self.engine, config.pool_size)
        self.busy: set[str] = set()  # containers in an execution, not yet (or no longer) registered
        self.reason: str | None = "the sandbox is not started"
        self.checked = 0.0
        self.checking = asyncio.Lock()
        self.background: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, fill the pool, start the heartbeat and reaper; never raises for a missing engine."""
        await self._check()
        if self.reason is not None:
            log.warning("code interpreter unavailable: %s", self.reason)
        else:
            try:
                await self.registry.beat(self.config.owner, 3 * HEARTBEAT_SECONDS)
            except Exception:
                log.exception("sandbox heartbeat failed")
        self.background = asyncio.create_task(self._maintain())

    async def close(self) -> None:
        """Remove our pool containers. In distributed mode sessions stay: they are in Redis, any
        worker on the engine takes them over, and once idle the reapers remove them (this owner's
        heartbeat is gone). In embedded mode nobody else can find them: they are removed."""
        if self.background is not None:
            self.background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.background
        await self.pool.close()
        if self.reason is None and not self.config.redis_url:
            mine = {s.container for s in await self.registry.live()} | self.busy
            await asyncio.gather(*(self.engine.remove(cid) for cid in mine), return_exceptions=True)
        if self.reason is None:
            with contextlib.suppress(Exception):
                await self.registry.beat(self.config.owner, 0)
        await self.registry.close()
        await self.engine.close()

    async def unavailable(self) -> str | None:
        """None when executions can run, else why not (engine unreachable, image absent)."""
        if self.reason is not None and time.monotonic() - self.checked > RECHECK_SECONDS:
            await self._check()
        return self.reason

    async def reap(self) -> int:
        """Remove orphaned and expired sandbox containers of our namespace now."""
        if await self.unavailable() is not None:
            return 0
        return await reap(self.engine, self.registry, set(self.pool.ready) | self.busy)

    async def execute(
        self,
        session: str,
        code: str,
        files: Sequence[InputFile] = (),
        project: str = "",
        memory_bytes: int | None = None,
    ) -> Execution:
        """Run `code` in the session's interpreter; input files appear in /mnt/data (once per session).

        A new session counts towards the caps (`max_sessions`, `max_project_sessions` for
        `project`): past them SandboxLimit. `memory_bytes` other than the config's starts the
        session in a container of its own size (not a pooled one). Call close() on the result
        once its files are read.
        """
        reason = await self.unavailable()
        if reason is not None:
            raise SandboxUnavailable(reason)
        try:
            async with self.registry.lock(session, self.config.timeout_seconds + GRACE_SECONDS + 60):
                return await self._execute(session, code, files, project, memory_bytes)
        except ENGINE_ERRORS as exc:
            await self._check()
            if self.reason is not None:
                raise SandboxUnavailable(self.reason) from exc
            raise
        except RedisError as exc:
            raise SandboxUnavailable(f"the session registry (Redis) is unreachable ({exc})") from exc

    async def _check(self) -> None:
        async with self.checking:  # one connection attempt at a time
            self.reason = await self.engine.connect()
            self.checked = time.monotonic()
        if self.reason is None:
            self.pool.fill()

    async def _maintain(self) -> None:
        last_reap = time.monotonic()
        every = max(1.0, min(60.0, self.config.idle_seconds / 2))
        while True:
            await asyncio.sleep(min(HEARTBEAT_SECONDS, every))
            try:
                if await self.unavailable() is not None:
                    continue
                await self.registry.beat(self.config.owner, 3 * HEARTBEAT_SECONDS)
                if time.monotonic() - last_reap >= every:
                    last_reap = time.monotonic()
                    await self.reap()
            except Exception:
                log.exception("sandbox heartbeat/reaper failed")

    async def sessions(self, prefix: str) -> list[str]:
        """The keys of the live sessions that start with `prefix` (every worker's)."""
        if await self.unavailable() is not None:
            return []
        return await self.registry.keys(prefix)

    async def forget(self, session: str, wait: float | None = None) -> None:
        """End a session now (its container removed), as if it had never been: the next
        execution under this key starts afresh and is not told of a reset. SandboxBusy if an
        execution holds it past `wait` seconds (by default, as long as one can last)."""
        if await self.unavailable() is not None:
            return
        if wait is None:
            wait = self.config.timeout_seconds + GRACE_SECONDS + 60
        async with self.registry.lock(session, wait):
            found = await self.registry.get(session)
            await self.registry.drop(session)
            if found is not None and found.engine == self.engine.id:
                await self.engine.remove(found.container)

    async def _execute(
        self, key: str, code: str, files: Sequence[InputFile], project: str, memory_bytes: int | None
    ) -> Execution:
        old = session = await self.registry.get(key)
        lost = session is None and await self.registry.seen(key)
        if session is not None and session.engine != self.engine.id:
            session, lost = None, True  # its container lives on another engine: unreachable
        if session is not None:
            try:
                return await self._run(key, session, code, files, lost)
            except Gone:
                lost = True  # removed or stopped since the last execution
        own_size = memory_bytes if memory_bytes not in (None, self.config.memory_bytes) else None
        session = await self._create(key, project, old, own_size)
        try:
            return await self._run(key, session, code, files, lost)
        except Gone:  # a pooled container that died while waiting: start one now
            session = Session(await self.engine.run(own_size), self.engine.id, project=project)
            return await self._run(key, session, code, files, lost)

    async def _create(self, key: str, project: str, old: Session | None, memory_bytes: int | None) -> Session:
        """A new session, registered at once so that the caps count it (one creation at a time,
        across workers: two at once could both pass the count)."""
        async with self.registry.lock(CREATING, 60):
            live = [s for s in await self.registry.live() if old is None or s.container != old.container]
            if len(live) >= self.config.max_sessions:
                raise SandboxLimit(
                    f"the server runs its maximum of {self.config.max_sessions} code interpreter sessions"
                )
            if sum(s.project == project for s in live) >= self.config.max_project_sessions:
                raise SandboxLimit(
                    f"this project has its maximum of {self.config.max_project_sessions} code interpreter "
                    "sessions (a session ends after "
                    f"{self.config.idle_seconds / 60:g} idle minutes)"
                )
            cid = await (self.engine.run(memory_bytes) if memory_bytes else self.pool.take())
            session = Session(cid, self.engine.id, project=project)
            await self.registry.put(key, session)
            return session

    async def _run(
        self, key: str, session: Session, code: str, files: Sequence[InputFile], lost: bool
    ) -> Execution:
        new = [f for f in files if f.file_id not in session.files]
        timeout = self.config.timeout_seconds
        request = {
            "code": code,
            "timeout": timeout,
            "output_bytes": self.config.output_bytes,
            "files": [{"name": safe_name(f), "data": base64.b64encode(await f.read()).decode()} for f in new],
        }
        self.busy.add(session.container)
        try:
            try:
                reply = await asyncio.wait_for(
                    self.engine.exchange(session.container, request), timeout + GRACE_SECONDS
                )
            except TimeoutError:
                why = f"Execution timed out after {timeout:g} s and could not be interrupted"
                return await self._reset(key, session.container, "timeout", why, lost)
            except Died:
                return await self._died(key, session.container, lost)
            except ReplyTooLarge as exc:
                why = f"The execution's results were too large to return ({exc})"
                return await self._reset(key, session.container, "error", why, lost)
            except Gone:
                await self.engine.remove(session.container)
                raise
            session.last_used = time.time()
            session.files += [f.file_id for f in new]
            await self.registry.put(key, session)
            result = _execution(reply, timeout, self.config.memory_bytes, lost)
            await self._copy_out(session.container, reply.get("files", []), result)
        finally:
            self.busy.discard(session.container)
        return result

    async def _copy_out(self, cid: str, listed: list[dict[str, Any]], result: Execution) -> None:
        """Copy the files the runner listed, each in chunks to a temporary file (under the
        session's lock: the code is over and its processes are gone, nothing changes them)."""
        try:
            for item in listed:
                path, size = str(item.get("path", "")), int(item.get("size", 0))
                if posixpath.normpath(path) != path or not path.startswith(DATA_DIR + "/"):
                    continue
                data = await self.engine.copy_out(cid, path, size)
                if data is None:
                    result.logs += f"\n[{path} changed or vanished while it was copied: not returned]"
                else:
                    result.files.append(OutputFile(path, size, data))
        except BaseException:
            result.close()
            raise

    async def _died(self, key: str, cid: str, lost: bool) -> Execution:
        state: dict[str, Any] = {}
        for _ in range(40):  # the engine records the exit (and OOMKilled) just after the stream ends
            state = await self.engine.state(cid)
            if not state.get("Running"):
                break
            await asyncio.sleep(0.05)
        if state.get("OOMKilled"):
            limit = self.config.memory_bytes / (1 << 20)
            why = f"Execution ran out of memory (limit {limit:g} MiB) and was killed"
            return await self._reset(key, cid, "memory", why, lost)
        why = f"The sandbox process died (exit code {state.get('ExitCode', '?')})"
        return await self._reset(key, cid, "crashed", why, lost)

    async def _reset(self, key: str, cid: str, status: str, why: str, lost: bool) -> Execution:
        """End a session the runner cannot recover from; the model reads `why` and that it was reset."""
        await self._discard(key, cid)
        return Execution(
            status, f"{why}; the session was reset: variables, imports and files are lost.", reset=lost
        )

    async def _discard(self, key: str, cid: str) -> None:
        """Forget the session (the model is told in this execution's logs) and remove its container."""
        await self.registry.drop(key)
        await self.engine.remove(cid)


def safe_name(file: InputFile) -> str:
    """The name's last part as a file name in /mnt/data: never `.`, `..`, empty or with a separator."""
    base = file.name.replace("\\", "/").rsplit("/", 1)[-1].replace("\0", "")
    return base if base not in ("", ".", "..") else file.file_id


def _execution(reply: dict[str, Any], timeout: float, memory_bytes: int, lost: bool) -> Execution:
    logs = reply.get("logs", "")
    status = reply["status"]
    if reply.get("restarted"):  # the runner replaced the code's interpreter: its variables are gone
        why = {
            "timeout": f"Execution timed out after {timeout:g} s and could not be interrupted",
            "memory": f"Execution ran out of memory (limit {memory_bytes / (1 << 20):g} MiB) and was killed",
        }.get(status, str(reply.get("why", "The code's interpreter was restarted")))
        logs += f"\n{why}; the session was reset: variables and imports are lost ({KEPT})."
    elif status == "timeout":
        logs += (
            f"\nExecution timed out after {timeout:g} s and was interrupted; "
            "the session's variables and files are kept."
        )
    return Execution(
        status=status,
        logs=logs,
        images=[base64.b64decode(png) for png in reply.get("images", [])],
        reset=lost,
    )
