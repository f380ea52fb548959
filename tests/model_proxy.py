"""A recording proxy in front of a real inference server, run as a process by the real-server tests.

`python -m tests.model_proxy --upstream http://127.0.0.1:8080 --port 9200`

Requests are passed on unchanged and recorded: GET /_requests lists what was received (the body,
and the upstream's status). A model name ending in `@cut` is sent upstream without the suffix,
and the streamed answer is cut after its first two events (no finish_reason, no [DONE]), as a
server that fails inside its stream does.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from tests.scripted_model import read_body, send_json

UPSTREAM = ""
LOG: list[dict[str, Any]] = []
CLIENT: httpx.AsyncClient | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global CLIENT
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    raw = await read_body(receive)
    if scope["path"] == "/_requests":
        return await send_json(send, 200, LOG)
    CLIENT = CLIENT or httpx.AsyncClient(timeout=600)
    body: Any = json.loads(raw) if raw else None
    cut = False
    if isinstance(body, dict) and str(body.get("model", "")).endswith("@cut"):
        body["model"], cut = body["model"][: -len("@cut")], True
        raw = json.dumps(body).encode()
    entry: dict[str, Any] = {"path": scope["path"], "body": body, "status": None}
    LOG.append(entry)
    request = CLIENT.build_request(
        scope["method"], UPSTREAM + scope["path"], content=raw, headers={"content-type": "application/json"}
    )
    upstream = await CLIENT.send(request, stream=True)
    entry["status"] = upstream.status_code
    headers = [
        (k.encode(), v.encode())
        for k, v in upstream.headers.items()
        if k.lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
    events = 0
    try:
        async for chunk in upstream.aiter_bytes():
            if cut:
                events += chunk.count(b"\n\n")
                if events > 2:  # the first two events went out: close as a failing server does
                    break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        await upstream.aclose()
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    global UPSTREAM
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args()
    UPSTREAM = args.upstream.rstrip("/")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
