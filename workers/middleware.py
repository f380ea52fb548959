"""The Runner lives and dies with the dramatiq worker that hosts it."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread

from core.broker import BackgroundSender, backlog
from core.config import get_settings
from workers.runner import Runner

log = logging.getLogger("assistd.worker")
_runner: Runner | None = None


def runner() -> Runner:
    if _runner is None:
        raise RuntimeError("the worker has not booted")
    return _runner


class RunnerMiddleware(dramatiq.Middleware):
    """Creates the Runner on the worker's event loop at boot and hands back its runs at shutdown.

    Added after dramatiq's AsyncIO middleware, whose "after" hooks run later (in reverse order):
    so at shutdown this runs once the consumers have stopped (nothing new is claimed) and
    before the event loop stops.
    """

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        async def boot() -> None:
            global _runner
            _runner = Runner(get_settings(), BackgroundSender(), backlog)

        get_event_loop_thread().run_coroutine(boot())  # type: ignore[union-attr]

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        global _runner
        if _runner is None:
            return
        loop_thread: Any = get_event_loop_thread()
        try:
            loop_thread.run_coroutine(_runner.close())
        except Exception:
            log.warning("runner did not close cleanly", exc_info=True)
        _runner = None
