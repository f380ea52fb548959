"""A scripted OpenAI-compatible model server, run as a real process by tests and benchmarks.

`python -m tests.scripted_model --port 9100 [--latency-ms 0]`

The model name picks the script:
  echo (or any other name)  "You said: <last user message>"
  text:<reply>              always <reply>
  words:<n>                 "w1 w2 ... wn" (n words: n deltas when streamed)
  slow:<ms>                 echo after <ms> milliseconds
  pause:<ms>                echo; when streamed, pause <ms> milliseconds after the first word
  error:<status>            an OpenAI-shaped error with that HTTP status
  flaky:<n>                 HTTP 500 for the first <n> requests carrying the same last message, then echo
  length                    a reply cut off by the token limit (finish_reason "length")
  toolonce:<name>           calls function <name> once, then answers "done: <tool output>"
  queue:<key>               the next response pushed with POST /_script {"key", "responses": [...]};
                            a response is {"content": str} | {"tool_calls": [{"id", "name", "arguments"}]}
                            | {"error": status}; "expect_tool_results": [[tool_call_id, output], ...]
                            makes the server answer 400 unless the request ends with exactly
                            those tool messages, in that order
Both `stream: true` (with `stream_options.include_usage`) and plain responses are served.

A model name may end in `@` and comma-separated quirks of real inference servers (llama.cpp,
vLLM, Ollama), which are stricter or rougher than OpenAI: `echo@strict,repeat-ids`.
  strict      a message whose content is null is refused with HTTP 500, as llama.cpp's server does
  obey        a function named in `tool_choice` is called, whatever came before (as a real model
              does when it is forced), with `{"n": <calls so far>}` as its arguments
  repeat-ids  every chunk of a streamed tool call repeats its id, type and function name
  no-usage    no usage chunk when streaming, whatever `stream_options` asks
  cut         the stream closes after its first words: no finish_reason, no [DONE]
POST /v1/embeddings answers at once with deterministic vectors: each lower-cased word is hashed
into one of `dimensions` (default 64) buckets, and the counts are L2-normalised, so texts that
share words are close; an input containing `[slow-embedding N ms]` makes the answer wait N ms
(a worker can then be killed mid-ingestion). Embedding requests are not listed by /_requests.
GET /v1/models lists one model, "echo", as a server that loaded one would (the names above
are scripts it answers to, not models it has).
GET /_requests lists what was received (body, received_at, done_at); DELETE /_requests clears it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import math
import re
import time
from collections import defaultdict, deque
from typing import Any

from core.tokens import tokens

_ids = itertools.count(1)
LOG: deque[dict[str, Any]] = deque(maxlen=20_000)
QUEUES: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
FLAKY: dict[str, int] = defaultdict(int)
LATENCY_MS = 0.0
STARTED = int(time.time())


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content or "")
    return ""


def _tool_results(body: dict[str, Any]) -> list[list[str]]:
    """The tool messages at the end of the conversation: [tool_call_id, content] each."""
    out: list[list[str]] = []
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") != "tool":
            break
        out.append([msg.get("tool_call_id"), msg.get("content")])
    return out[::-1]


def _tokens(text: str, model: str = "") -> int:
    """As the model would count: OpenAI's encoding for an OpenAI model name ("gpt-4o"), else about
    four characters a token."""
    return tokens(text, model.partition("@")[0])


def quirks(body: dict[str, Any]) -> set[str]:
    return set(str(body.get("model", "")).partition("@")[2].split(",")) - {""}


def plan(body: dict[str, Any]) -> dict[str, Any]:
    """What to answer: {"content"} | {"tool_calls"} | {"error"} | {"content", "finish": "length"}."""
    model = str(body.get("model", "echo")).partition("@")[0]
    kind, _, arg = model.partition(":")
    last = _last_user_text(body)
    odd = quirks(body)
    if "strict" in odd:
        for i, msg in enumerate(body.get("messages", [])):
            if msg.get("content") is None:
                return {"error": 500, "message": f"messages.{i}.content: Input should be a valid string"}
    choice = body.get("tool_choice")
    if "obey" in odd and isinstance(choice, dict) and choice.get("type") == "function":
        calls = sum(len(m.get("tool_calls") or []) for m in body.get("messages", []))
        return {
            "tool_calls": [
                {
                    "id": f"call_obey{calls}",
                    "name": choice["function"]["name"],
                    "arguments": json.dumps({"n": calls}),
                }
            ]
        }
    if kind == "text":
        return {"content": arg}
    if kind == "words":
        return {"content": " ".join(f"w{i}" for i in range(1, int(arg or 1) + 1))}
    if kind == "error":
        return {"error": int(arg or 500)}
    if kind == "slow":
        return {"content": f"You said: {last}", "delay_ms": float(arg or 0)}
    if kind == "pause":
        return {"content": f"You said: {last}", "pause_ms": float(arg or 0)}
    if kind == "flaky":
        FLAKY[last] += 1
        return {"error": 500} if FLAKY[last] <= int(arg or 1) else {"content": f"You said: {last}"}
    if kind == "toolonce":
        messages = body.get("messages", [])
        if messages and messages[-1].get("role") == "tool":
            return {"content": f"done: {messages[-1].get('content')}"}
        call_id = "call_" + hashlib.sha1(last.encode()).hexdigest()[:16]
        return {"tool_calls": [{"id": call_id, "name": arg or "f", "arguments": json.dumps({"text": last})}]}
    if kind == "length":
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 16
        return {"content": "word " * int(limit), "finish": "length"}
    if kind == "queue":
        queue = QUEUES[arg]
        if not queue:
            return {"error": 500, "message": f"script queue {arg!r} is empty"}
        step = queue.popleft()
        expected = step.get("expect_tool_results")
        if expected is not None and _tool_results(body) != [list(e) for e in expected]:
            return {"error": 400, "message": f"expected tool results {expected}, got {_tool_results(body)}"}
        return step
    return {"content": f"You said: {last}"}


def completion(body: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    model = str(body.get("model", ""))
    prompt_tokens = sum(_tokens(json.dumps(m.get("content")), model) for m in body.get("messages", []))
    message: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
    finish = step.get("finish", "stop")
    if step.get("tool_calls"):
        message["tool_calls"] = [
            {
                "id": c.get("id") or f"call_{next(_ids)}",
                "type": "function",
                "function": {"name": c["name"], "arguments": c.get("arguments", "{}")},
            }
            for c in step["tool_calls"]
        ]
        finish = "tool_calls"
    completion_tokens = _tokens(json.dumps(message))
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "echo"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chunks(full: dict[str, Any], include_usage: bool, repeat_ids: bool = False) -> list[dict[str, Any]]:
    """The streamed form of a completion: role, content pieces, tool call pieces, finish, usage."""
    base = {k: full[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = full["choices"][0]
    message = choice["message"]
    out = [{"role": "assistant", "content": ""}]
    content = message.get("content") or ""
    words = content.split(" ")
    out += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words) if content]
    for index, call in enumerate(message.get("tool_calls") or []):
        out.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        args = call["function"]["arguments"]
        for i in range(0, len(args), 8):
            piece: dict[str, Any] = {"index": index, "function": {"arguments": args[i : i + 8]}}
            if repeat_ids:
                piece |= {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": args[i : i + 8]},
                }
            out.append({"tool_calls": [piece]})
    events = [base | {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in out]
    events.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if include_usage:
        events.append(base | {"choices": [], "usage": full["usage"]})
    return events


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            return body


async def send_json(send: Any, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path, method = scope["path"], scope["method"]
    raw = await read_body(receive)
    if path == "/_requests":
        if method == "DELETE":
            LOG.clear()
            FLAKY.clear()
            QUEUES.clear()
        return await send_json(send, 200, list(LOG))
    if path == "/_script":
        data = json.loads(raw)
        QUEUES[data["key"]].extend(data["responses"])
        return await send_json(send, 200, {"queued": len(QUEUES[data["key"]])})
    if path == "/health":
        return await send_json(send, 200, {"ok": True})
    if path.endswith("/embeddings"):
        body = json.loads(raw)
        delay = max((float(ms) for t in _inputs(body) for ms in SLOW_EMBEDDING.findall(str(t))), default=0.0)
        if delay:
            await asyncio.sleep(delay / 1000)
        return await send_json(send, 200, embeddings(body))
    if path.endswith("/models") and method == "GET":
        listed = {"id": "echo", "object": "model", "created": STARTED, "owned_by": "scripted"}
        return await send_json(send, 200, {"object": "list", "data": [listed]})
    if not path.endswith("/chat/completions"):
        return await send_json(
            send, 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        )
    await chat(json.loads(raw), send)


def _bag_of_words(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


SLOW_EMBEDDING = re.compile(r"\[slow-embedding (\d+) ms\]")


def _inputs(body: dict[str, Any]) -> list[Any]:
    texts = body.get("input", [])
    return [texts] if isinstance(texts, str) else list(texts)


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """A hashed bag of words per input, as the OpenAI embeddings API shapes it."""
    texts = _inputs(body)
    dim = int(body.get("dimensions") or 64)
    tokens = sum(_tokens(str(t)) for t in texts)
    return {
        "object": "list",
        "model": body.get("model", "embed"),
        "data": [
            {"object": "embedding", "index": i, "embedding": _bag_of_words(str(t), dim)}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def chat(body: dict[str, Any], send: Any) -> None:
    entry = {"body": body, "received_at": time.time(), "done_at": None}
    LOG.append(entry)
    step = plan(body)
    delay = step.get("delay_ms", LATENCY_MS)
    if delay:
        await asyncio.sleep(delay / 1000)
    if "error" in step:
        status = int(step["error"])
        message = step.get("message") or f"scripted error {status}"
        await send_json(
            send,
            status,
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error" if status < 500 else "server_error",
                    "param": None,
                    "code": None,
                }
            },
        )
        entry["done_at"] = time.time()
        return
    full = completion(body, step)
    if not body.get("stream"):
        await send_json(send, 200, full)
        entry["done_at"] = time.time()
        return
    odd = quirks(body)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and "no-usage" not in odd
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    events = chunks(full, include_usage, repeat_ids="repeat-ids" in odd)
    if "cut" in odd:  # the server fails inside the stream and closes it
        events = events[:2]
    for i, event in enumerate(events):
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + json.dumps(event).encode() + b"\n\n",
                "more_body": True,
            }
        )
        if i == 1 and step.get("pause_ms"):
            await asyncio.sleep(step["pause_ms"] / 1000)
    await send({"type": "http.response.body", "body": b"" if "cut" in odd else b"data: [DONE]\n\n"})
    entry["done_at"] = time.time()


def main() -> None:
    global LATENCY_MS
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    args = parser.parse_args()
    LATENCY_MS = args.latency_ms
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
