"""The official openai npm package (the JavaScript SDK) drives Assistd too: many integrations are Node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import KEY_A, ROOT, ScriptedModel, Server, unavailable

NODE = ROOT / "tests" / "node"


@pytest.fixture(scope="module")
def node_sdk() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("Node.js and npm")
    if not (NODE / "node_modules" / "openai").exists():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE, check=True, timeout=300
        )
    return str(node)


def test_node_sdk(node_sdk: str, server: Server, model_server: ScriptedModel) -> None:
    tool_model = model_server.script(
        str(uuid.uuid4()),
        [
            {"tool_calls": [{"id": "call_js", "name": "get_weather", "arguments": "{}"}]},
            {"content": "It is sunny.", "expect_tool_results": [["call_js", "sunny"]]},
        ],
    )
    env = os.environ | {"ASSISTD_URL": f"{server.url}/v1", "ASSISTD_KEY": KEY_A, "TOOL_MODEL": tool_model}
    result = subprocess.run(
        [node_sdk, "check.mjs"], cwd=NODE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["quickstart"] == {"status": "completed", "reply": "You said: I need to solve 3x + 11 = 14"}
    assert out["stream"]["status"] == "completed" and out["stream"]["deltas"] > 1
    assert out["stream"]["text"] == out["stream"]["message"] == "You said: I need to solve 3x + 11 = 14"
    assert out["tools"] == {
        "first": "requires_action",
        "call": "get_weather",
        "status": "completed",
        "reply": "It is sunny.",
    }
    assert out["auth"] == {"status": 401, "name": "AuthenticationError"}
    assert out["missing"] == {"status": 404, "name": "NotFoundError"}


def test_node_sdk_responses(node_sdk: str, server: Server, model_server: ScriptedModel) -> None:
    tool_model = model_server.script(
        str(uuid.uuid4()),
        [
            {"tool_calls": [{"id": "call_js2", "name": "get_weather", "arguments": "{}"}]},
            {"content": "It is sunny.", "expect_tool_results": [["call_js2", "sunny"]]},
        ],
    )
    env = os.environ | {"ASSISTD_URL": f"{server.url}/v1", "ASSISTD_KEY": KEY_A, "TOOL_MODEL": tool_model}
    result = subprocess.run(
        [node_sdk, "responses.mjs"], cwd=NODE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plain"] == {"status": "completed", "text": "You said: hello from node"}
    assert out["stream"] == {"status": "completed", "deltas": 4, "text": "w1 w2 w3 w4"}
    assert out["tools"] == {"call": "get_weather", "text": "It is sunny."}
    assert out["conversation"] == ["remember me", "You said: remember me"]
