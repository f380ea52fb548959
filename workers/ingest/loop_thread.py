"""Ingestion's own event loop, in a thread at a lower CPU priority.

Ingestion takes every core it can get (reading, extracting, chunking, embedding requests,
database writes); a search in the API or a run on this worker should not wait behind it. Linux
keeps a nice value per thread, and a thread inherits it from the thread that starts it: so the
loop thread, the threads it hands work to (its executor) and the ones its libraries start
(aiosqlite's) are all niced, while the worker's run loop and dramatiq's threads keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger("assistd.ingest")
T = TypeVar("T")


def lower_priority(niceness: int) -> None:
    """Raise the calling thread's nice value to `niceness` (never lower it). Linux only: elsewhere
    the call would renice the whole process, run loop included."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except OSError:
        log.warning("could not lower the priority of ingestion's threads", exc_info=True)


class LoopThread:
    """An event loop running in a thread of its own, at nice `niceness`, with `workers` threads
    for `asyncio.to_thread`."""

    def __init__(self, niceness: int, workers: int, name: str = "assistd-ingest") -> None:
        self.niceness = niceness
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(
            workers, thread_name_prefix=name, initializer=lower_priority, initargs=(niceness,)
        )
        self.loop.set_default_executor(self.executor)
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        lower_priority(self.niceness)
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and wait for its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` on the loop soon (from any thread)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if not self.thread.is_alive():
            self.loop.close()
