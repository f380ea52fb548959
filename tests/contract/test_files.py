"""The Files API through the official SDK; bytes on local disk (embedded) or in S3 (distributed)."""

from __future__ import annotations

import io
import os

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from tests.conftest import KEY_B, Server


def test_upload_list_content_delete(server: Server, client: OpenAI) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    uploaded = client.files.create(file=("numbers.bin", io.BytesIO(data)), purpose="assistants")
    assert uploaded.id.startswith("file-") and uploaded.object == "file" and uploaded.bytes == len(data)
    assert (
        uploaded.filename == "numbers.bin"
        and uploaded.purpose == "assistants"
        and uploaded.status == "processed"
    )
    assert client.files.retrieve(uploaded.id).model_dump() == uploaded.model_dump()
    assert client.files.content(uploaded.id).read() == data
    other = client.files.create(file=("notes.md", b"# notes"), purpose="user_data")
    ids = [f.id for f in client.files.list(purpose="assistants")]
    assert uploaded.id in ids and other.id not in ids
    assert [f.id for f in client.files.list(limit=1, order="desc")][:1] == [other.id]
    with pytest.raises(NotFoundError):
        server.client(KEY_B).files.retrieve(uploaded.id)  # another project's file
    gone = client.files.delete(uploaded.id)
    assert gone.deleted and gone.id == uploaded.id
    with pytest.raises(NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(NotFoundError):
        client.files.content(uploaded.id)


def test_bad_uploads(server: Server, client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        client.files.create(file=("a.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert info.value.body["param"] == "purpose"
    raw = httpx.post(
        f"{server.url}/v1/files",
        data={"purpose": "assistants"},
        headers={"Authorization": "Bearer sk-test-project-a"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "file"
    with pytest.raises(BadRequestError):
        client.files.create(
            file=("a.txt", b"x"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 10}
        )


def test_bad_file_names_are_refused_before_any_byte_is_kept(server: Server, client: OpenAI) -> None:
    """A NUL in the name was a 500 on PostgreSQL after the bytes were stored; a long name was kept
    and echoed in every list. (The SDK percent-encodes a NUL, so the form is written by hand.)"""
    before = len(client.files.list().data)
    for name in (b"a\x00b.txt", b"n" * 2000 + b".txt"):
        body = (
            b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--b\r\n'
            b'Content-Disposition: form-data; name="file"; filename="' + name + b'"\r\n\r\nx\r\n--b--\r\n'
        )
        resp = httpx.post(
            f"{server.url}/v1/files",
            content=body,
            headers={
                "Authorization": "Bearer sk-test-project-a",
                "Content-Type": "multipart/form-data; boundary=b",
            },
        )
        assert resp.status_code == 400 and resp.json()["error"]["param"] == "file", resp.text
    assert len(client.files.list().data) == before


def test_expiry_is_reported(client: OpenAI) -> None:
    f = client.files.create(
        file=("a.txt", b"x"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert f.expires_at is not None and f.expires_at - f.created_at in (3599, 3600, 3601)
