"""Rate limit counters in Redis (distributed mode; core/quotas.py says what they count), and
the process's counters, Redis or memory (`counters`).

A check is one Lua script: it increments, gives a new window its expiry and reads the tokens in
one atomic step. As separate commands, a counter could expire between the increment and the
expiry and then never expire again: the project blocked for good.

The checks of one event loop iteration go to Redis together, in one pipeline. A round trip's
cost here is mostly the socket's system calls (about 0.15-0.3 ms of CPU on loopback, more than
the rest of a small request's handling), and under load many requests reach the check in the
same iteration, so they share one write and one read; alone, a check is one EVALSHA as before.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from core.config import Settings
from core.quotas import Counters, MemoryCounters, Usage

# KEYS: the requests and the tokens counter; ARGV: the window in ms, "1" to count a request,
# "1" to read the tokens. Returns "requests ms-left tokens ms-left": one string, which the client
# parses in a fraction of the time an array of four numbers takes (redis-py's parser is Python).
HIT = """
local requests, requests_ms, tokens, tokens_ms = 0, 0, 0, 0
if ARGV[2] == '1' then
  requests = redis.call('INCR', KEYS[1])
  requests_ms = redis.call('PTTL', KEYS[1])
  if requests_ms < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    requests_ms = tonumber(ARGV[1])
  end
end
if ARGV[3] == '1' then
  tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
  tokens_ms = math.max(redis.call('PTTL', KEYS[2]), 0)
end
return requests .. ' ' .. requests_ms .. ' ' .. tokens .. ' ' .. tokens_ms
"""
# KEYS: the tokens counter; ARGV: the tokens, the window in ms
SPEND = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""
SHA = {script: hashlib.sha1(script.encode()).hexdigest() for script in (HIT, SPEND)}

Call = tuple[str, list[Any], "asyncio.Future[Any]"]  # script, its keys and args, its caller's result


class _Loop:
    """One event loop's client (redis.asyncio is loop-bound) and the calls waiting to be sent."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.waiting: list[Call] = []
        self.sending: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references


class RedisCounters:
    def __init__(self, url: str, namespace: str, window: float) -> None:
        self.url, self.namespace = url, namespace
        self.window_ms = max(1, round(window * 1000))
        self._loops: dict[int, _Loop] = {}

    def _loop(self) -> _Loop:
        from core.redis_client import async_client

        key = id(asyncio.get_running_loop())
        got = self._loops.get(key)
        if got is None:
            # a short timeout: a Redis that hangs lets requests through (api/ratelimit.py lets
            # a failed check pass) rather than holding every one of them
            client = async_client(self.url, socket_timeout=2, socket_connect_timeout=2)
            got = self._loops[key] = _Loop(client)
        return got

    def _key(self, project: str, kind: str) -> str:
        # the braces keep a project's two keys in one Redis Cluster slot, as a script needs
        return f"{self.namespace}:ratelimit:{{{project}}}:{kind}"

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """The script's answer, sent with whatever else this loop iteration asks for."""
        state, loop = self._loop(), asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        state.waiting.append((script, [len(keys), *keys, *args], result))
        if len(state.waiting) == 1:
            # the first call of this iteration starts the send, which runs in the next one: after
            # every request already ready in this one has added its call
            task = loop.create_task(self._send(state))
            state.sending.add(task)
            task.add_done_callback(state.sending.discard)
        return await result

    async def _send(self, state: _Loop) -> None:
        calls, state.waiting = state.waiting, []
        try:
            answers = await self._evalsha(state.client, calls)
            missing = [i for i, a in enumerate(answers) if _no_script(a)]
            if missing:  # Redis restarted or was flushed: load the scripts, send those again
                for script in SHA:
                    await state.client.script_load(script)
                again = await self._evalsha(state.client, [calls[i] for i in missing])
                for i, answer in zip(missing, again, strict=True):
                    answers[i] = answer
        except Exception as exc:
            answers = [exc] * len(calls)
        for (_, _, result), answer in zip(calls, answers, strict=True):
            if result.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(answer, Exception):
                result.set_exception(answer)
            else:
                result.set_result(answer)

    async def _evalsha(self, client: Any, calls: list[Call]) -> list[Any]:
        if len(calls) == 1:  # alone, without a pipeline's own cost
            script, args, _ = calls[0]
            try:
                return [await client.evalsha(SHA[script], *args)]
            except Exception as exc:
                if not _no_script(exc):
                    raise
                return [exc]
        pipe = client.pipeline(transaction=False)
        for script, args, _ in calls:
            pipe.evalsha(SHA[script], *args)
        return list(await pipe.execute(raise_on_error=False))

    async def hit(self, project: str, request: bool, tokens: bool) -> Usage:
        keys = [self._key(project, "requests"), self._key(project, "tokens")]
        answer = await self._call(HIT, keys, [self.window_ms, int(request), int(tokens)])
        requests, requests_ms, spent, tokens_ms = map(int, answer.split())
        return Usage(requests, requests_ms / 1000, spent, tokens_ms / 1000)

    async def spend(self, project: str, tokens: int) -> None:
        await self._call(SPEND, [self._key(project, "tokens")], [tokens, self.window_ms])

    async def aclose(self) -> None:
        """Close this event loop's connection."""
        state = self._loops.pop(id(asyncio.get_running_loop()), None)
        if state is not None:
            await state.client.aclose()


def _no_script(answer: Any) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(answer, NoScriptError)


_counters: Counters | None = None


def counters(settings: Settings) -> Counters:
    """The process's counters: Redis when redis_url is set, memory otherwise (one object, so that
    in embedded mode the worker's spending is what the API reads)."""
    global _counters
    if _counters is None:
        window = settings.rate_limit_window_seconds
        if settings.redis_url:
            _counters = RedisCounters(settings.redis_url, settings.redis_namespace, window)
        elif settings.hub:  # an API process of `assistd serve --workers N`: the parent's memory
            from core.hub import HubCounters, client

            _counters = HubCounters(client(settings.hub))
        else:
            _counters = MemoryCounters(window)
    return _counters
