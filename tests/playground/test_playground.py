"""The playground in a real browser against a real `assistd serve` and the scripted model.

Each test runs one scenario of e2e.mjs in headless Chromium; screenshots go to artifacts/.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import KEY_A, KEY_B, ROOT, ScriptedModel, Server, start_embedded, stop

HERE = ROOT / "tests" / "playground"
ARTIFACTS = HERE / "artifacts"
ASSETS = ROOT / "api" / "playground"
WEATHER: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def scenario(node: str, server: Server, name: str, expected: str = "404", **env: str) -> dict[str, Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    run_env = (
        os.environ
        | {"PLAYGROUND_URL": server.url, "PLAYGROUND_KEY": KEY_A, "ARTIFACTS": str(ARTIFACTS)}
        | env
    )
    result = subprocess.run(
        [node, "e2e.mjs", name], cwd=HERE, env=run_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    # the one resource a page may fail to load: an endpoint the server lacks (vector stores), or a refused key
    assert [p for p in out.pop("problems") if f"status of {expected}" not in p] == []
    return out


def test_function_call_round_trip(browser: str, embedded: Server) -> None:
    out = scenario(browser, embedded, "chat")
    assert {"echo", "echo@small"} <= set(out["suggested"])  # the model picker offers GET /v1/models
    assert out["invalidVerdict"].startswith("Not valid JSON")
    assert out["missingVerdict"] == 'parameters: "town" is required but not in properties.'
    assert out["validVerdict"] == "Valid schema."
    assert "Weather bot" in out["listed"]
    assert (
        "client.beta.assistants.create(" in out["assistantCode"]
        and '"name": "get_weather"' in out["assistantCode"]
    )
    assert out["legend"].startswith("get_weather (call_")
    assert out["status"] == "Run requires action"
    assert out["answer"] == "done: sunny, 21 °C"
    assert "get_weather" in out["call"] and "Outputsunny, 21 °C" in out["call"]
    assert re.fullmatch(r"\d+ in · \d+ out · \d+ tokens", out["usage"])
    assert (
        "submit_tool_outputs_stream(" in out["submitCode"] and '"output": "sunny, 21 °C"' in out["submitCode"]
    )
    assert out["runs"] == ["completed"]


def test_streamed_answer_and_cancel(browser: str, embedded: Server) -> None:
    # pause:1500 sends its first word, waits 1.5 s, then the rest: the page must show the part first
    assistant = embedded.client().beta.assistants.create(model="pause:1500", name="Slow echo")
    out = scenario(browser, embedded, "stream", PLAYGROUND_ASSISTANT=assistant.id)
    assert out["answer"] == "You said: hello there", out
    assert "You" in out["partials"] and out["partials"][-1] == out["answer"]
    assert "Run in progress" in out["statuses"]
    assert re.fullmatch(r"\d+ in · \d+ out · \d+ tokens", out["usage"])
    assert re.fullmatch(r"user:Youhello therefile-\w+ \(code interpreter\)", out["timeline"][0])
    assert out["timeline"][1] == "run:completed"
    assert out["timeline"][2] == "user:Youplease stop" and out["timeline"][3] == "run:cancelled"
    assert "client.beta.threads.runs.cancel(" in out["cancelCode"]
    assert out["phoneOverflow"] is False


def test_responses_view(browser: str, embedded: Server) -> None:
    assistant = embedded.client().beta.assistants.create(model="echo", name="Default model")
    out = scenario(browser, embedded, "responses", PLAYGROUND_ASSISTANT=assistant.id)
    assert out["defaultModel"] == "echo"  # the current assistant's model
    # pause:1000 sends its first word, waits a second, then the rest: the page shows the part first
    assert out["answer"] == "You said: hello responses" and "You" in out["partials"], out["partials"]
    assert re.fullmatch(r"\d+ in · \d+ out · \d+ tokens", out["usage"])
    assert out["legend"].startswith("get_weather (call_")
    assert "get_weather" in out["call"] and '"text": "What is the weather in Paris?"' in out["call"]
    assert out["functionAnswer"] == "done: sunny, 21 °C" and out["statuses"] == ["completed"] * 3
    assert out["turns"] == [
        "user:first turn",
        "assistant:You said: first turn",
        "user:second turn",
        "assistant:You said: second turn",
    ]
    # the sidebar lists GET /conversations/{id}/items: the same four messages
    assert out["items"] == [turn.replace(":", ": ", 1) for turn in out["turns"]]
    assert out["title"].startswith("conv_") and f'conversation="{out["title"]}"' in out["conversationCode"]
    assert '"type": "function_call_output"' in out["submitCode"]
    assert "previous_response_id=" in out["submitCode"]
    assert out["copied"] == out["submitCode"]
    assert out["phoneOverflow"] is False
    # the copied code runs as it is, with the official SDK, against the same server
    for code, printed in [
        (out["streamCode"], "You said: hello responses"),
        (out["submitCode"], "done: sunny, 21 °C"),
        (out["conversationCode"], "You said: second turn"),
    ]:
        assert "client.responses.create(" in code
        ran = subprocess.run(
            [sys.executable, "-c", code],
            env=os.environ | {"OPENAI_API_KEY": KEY_A},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0 and ran.stdout.startswith(printed), ran.stderr[-2000:]


def test_runs_of_the_project_across_threads(browser: str, embedded: Server) -> None:
    """The runs view lists GET /v1/assistd/runs: runs of two threads and not another project's, a
    page at a time, refreshed while one is active (here, one waiting for a function's output); a
    click on a run opens its thread at that run."""
    client = embedded.client()
    assistant = client.beta.assistants.create(model="echo", name="Runs view")
    ours = [
        client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": text}]}
        )
        for text in ("first thread", "second thread")
    ]
    # more than a page (20) of newer runs: ours are on the second
    newer = [client.beta.threads.create_and_run(assistant_id=assistant.id) for _ in range(19)]
    # waits for a function's output (the scenario sends it): active until then
    waiting = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, model="toolonce:get_weather", tools=[WEATHER]
    )
    assert waiting.status == "requires_action"
    other = embedded.client(KEY_B).beta.assistants.create(model="echo")
    theirs = embedded.client(KEY_B).beta.threads.create_and_run(assistant_id=other.id)
    out = scenario(browser, embedded, "runs", PLAYGROUND_RUNS=f"{ours[0].id},{waiting.id}")
    assert out["firstPage"] == 20
    listed = {r["id"]: r for r in out["all"]}
    assert {r.id: r.thread_id for r in ours} == {r.id: listed[r.id]["thread"] for r in ours}
    assert ours[0].thread_id != ours[1].thread_id
    assert theirs.id not in listed and out["summary"].startswith(f"{len(listed)} run")
    assert len(listed) == len(out["all"]) > 20  # the second page appended, nothing twice
    first = ours[0]
    assert out["opened"] == {
        "hash": f"#/threads/{first.thread_id}/{first.id}",
        "title": first.thread_id,
        "highlighted": [first.id],
    }
    assert {r["status"] for r in out["completed"]} == {"completed"}
    # the thread list is the project's (GET /v1/assistd/threads), though no thread was started in
    # this browser: newest first, not another project's
    made = [r.thread_id for r in (*ours, *newer, waiting)]
    assert out["sidebar"][: len(made)] == made[::-1]
    assert theirs.thread_id not in out["sidebar"] and len(out["sidebar"]) == len(set(out["sidebar"]))


def test_upload_list_delete(browser: str, embedded: Server) -> None:
    out = scenario(browser, embedded, "upload")
    print(out["stores"])
    assert out["progress"] == 1
    assert {"notes.txt", "dropped.csv"} <= set(out["names"])
    assert "notes.txt" not in out["after"] and "dropped.csv" in out["after"]
    assert "client.files.delete(" in out["code"]
    stores = out["stores"]
    assert stores.get(
        "absent"
    ) == "This server does not offer vector stores yet, so file search has nothing to search." or re.search(
        r"guide\.txt\s*(completed|failed)", stores["file"]
    )


def test_bad_key_is_said_plainly(browser: str, embedded: Server) -> None:
    out = scenario(browser, embedded, "badkey", expected="401")
    assert out["error"].startswith("Your API key was not accepted.")
    assert out["dialogOpen"] == 1


def test_interactive_within_a_second(browser: str, embedded: Server) -> None:
    # the best of three loads: one load on two shared cores measures the machine's other work too
    loads = [scenario(browser, embedded, "perf") for _ in range(3)]
    out = min(loads, key=lambda o: float(o["ready"]))
    assert out["ready"] < 1000, [o["ready"] for o in loads]
    assert sum(r["bytes"] for r in out["resources"]) < 300_000  # as transferred (gzip)
    assert all(url.startswith(embedded.url) for url in out["urls"]), out["urls"]  # no CDN, nothing external


def test_first_load_is_small_and_local(embedded: Server) -> None:
    """Everything the first load fetches (every asset there is) weighs under 300 KB gzipped."""
    total = sum(len(gzip.compress(path.read_bytes())) for path in ASSETS.iterdir() if path.is_file())
    assert total < 300_000, total
    page = httpx.get(f"{embedded.url}/playground", follow_redirects=True, headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
        assert "//" not in ref, ref  # served by Assistd itself
        asset = httpx.get(f"{embedded.url}/playground/{ref}", headers={"Accept-Encoding": "gzip"})
        assert asset.status_code == 200, ref


def test_playground_can_be_switched_off() -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from core.config import Settings

    for on in (True, False):
        app = create_app(Settings(playground=on), enqueue=lambda _: None)
        assert TestClient(app).get("/playground/").status_code == (
            200 if on else 404
        )  # no lifespan: no database


def test_no_key_dialog_where_any_key_is_accepted(
    browser: str, embedded: Server, model_server: ScriptedModel, tmp_path: Path
) -> None:
    # the session's server has keys: it asks for one (test_function_call_round_trip types it)
    open_server = start_embedded(model_server, tmp_path, extra={"ASSISTD_API_KEYS": ""})
    try:
        out = scenario(browser, open_server, "nokey")
    finally:
        stop(open_server.procs)
    assert out["dialog"] is False and out["key"]
