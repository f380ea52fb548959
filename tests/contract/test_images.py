"""Images reach the model as chat-completions image_url parts: an uploaded file inline (a data:
URL), a URL as it is; an endpoint without vision gets a note in their place."""

from __future__ import annotations

import base64
import struct
import uuid
import zlib
from typing import Any

from openai import OpenAI

from tests.conftest import ScriptedModel
from tests.procs import TEXT_ONLY_MODEL

URL = "https://example.com/cat.png"


def png() -> bytes:
    """A valid 1x1 PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0"))
        + chunk(b"IEND", b"")
    )


def user_content(model_server: ScriptedModel, model: str, marker: str) -> Any:
    """The content of the user message carrying `marker` in the request the model received."""
    for request in reversed(model_server.requests(model)):
        for message in request["body"]["messages"]:
            if message["role"] == "user" and marker in str(message["content"]):
                return message["content"]
    raise AssertionError(f"no request with {marker!r}")


def test_run_images_reach_the_model(client: OpenAI, assistant: Any, model_server: ScriptedModel) -> None:
    data = png()
    upload = client.files.create(file=("dot.png", data), purpose="vision")
    for model in (f"vision-{uuid.uuid4().hex[:8]}", TEXT_ONLY_MODEL):
        marker = f"what is this {uuid.uuid4().hex[:8]}"
        thread = client.beta.threads.create(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": marker},
                        {"type": "image_file", "image_file": {"file_id": upload.id, "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": URL}},
                    ],
                }
            ]
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, model=model
        )
        assert run.status == "completed"
        content = user_content(model_server, model, marker)
        if model == TEXT_ONLY_MODEL:
            assert content == f"{marker}\n[image: dot.png]\n[image: {URL}]"
        else:
            inline = f"data:image/png;base64,{base64.b64encode(data).decode()}"
            assert content[1:] == [
                {"type": "image_url", "image_url": {"url": inline, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": URL}},  # as stored: no detail was given
            ]


def test_response_images_reach_the_model(client: OpenAI, model_server: ScriptedModel) -> None:
    data = png()
    upload = client.files.create(file=("dot.png", data), purpose="vision")
    for model in (f"vision-{uuid.uuid4().hex[:8]}", TEXT_ONLY_MODEL):
        marker = f"describe {uuid.uuid4().hex[:8]}"
        parts = [
            {"type": "input_text", "text": marker},
            {"type": "input_image", "file_id": upload.id, "detail": "high"},
        ]
        response = client.responses.create(model=model, input=[{"role": "user", "content": parts}])
        assert response.status == "completed"
        content = user_content(model_server, model, marker)
        if model == TEXT_ONLY_MODEL:
            assert content == f"{marker}\n[image: dot.png]"
        else:
            inline = f"data:image/png;base64,{base64.b64encode(data).decode()}"
            assert content[1] == {"type": "image_url", "image_url": {"url": inline, "detail": "high"}}
