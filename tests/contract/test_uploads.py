"""The Uploads API through the official SDK: a file sent in parts, assembled into a File (on local
disk in embedded mode; in S3 in distributed mode, as a multipart upload assembled there)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from openai import BadRequestError, NotFoundError, OpenAI
from sqlalchemy import text

from core.db import sync_engine
from tests.conftest import KEY_B, Server

MiB = 1024 * 1024


def stored(server: Server, keys: list[str]) -> list[str]:
    """Which of these storage keys hold bytes on the server (its files directory or its bucket)."""
    env = server.env
    if not env.get("ASSISTD_S3_BUCKET"):
        return [k for k in keys if (Path(env["ASSISTD_FILES_DIR"]) / k).exists()]
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["ASSISTD_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=env["ASSISTD_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["ASSISTD_S3_SECRET_ACCESS_KEY"],
    )
    listed = s3.list_objects_v2(Bucket=env["ASSISTD_S3_BUCKET"], Prefix="upload_part_").get("Contents", [])
    return [k for k in keys if k in {o["Key"] for o in listed}]


def test_upload_file_chunked(client: OpenAI, tmp_path: Path) -> None:
    data = os.urandom(5 * MiB + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    upload = client.uploads.upload_file_chunked(
        file=path,
        mime_type="application/octet-stream",
        purpose="assistants",
        part_size=MiB,
        md5=hashlib.md5(data).hexdigest(),
    )
    assert upload.object == "upload" and upload.status == "completed" and upload.bytes == len(data)
    assert upload.file is not None and upload.file.bytes == len(data) and upload.file.filename == "big.bin"
    assert upload.file.purpose == "assistants" and upload.filename == "big.bin"
    assert client.files.retrieve(upload.file.id).bytes == len(data)
    assert client.files.content(upload.file.id).read() == data


def test_parts_out_of_order_are_assembled_in_the_order_named(server: Server, client: OpenAI) -> None:
    # a part of S3's minimum size or more is copied within S3, a smaller last one is sent
    first, second, last = os.urandom(5 * MiB + 7), os.urandom(6 * MiB), os.urandom(100)
    total = len(first) + len(second) + len(last)
    upload = client.uploads.create(
        bytes=total,
        filename="parts.bin",
        mime_type="application/octet-stream",
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 7200},
    )
    assert upload.id.startswith("upload_") and upload.status == "pending" and upload.file is None
    assert upload.expires_at - upload.created_at == 3600 and upload.bytes == total
    made = {
        name: client.uploads.parts.create(upload_id=upload.id, data=data)
        for name, data in (("last", last), ("first", first), ("second", second))
    }
    part = made["first"]
    assert part.id.startswith("upload_part_") and part.object == "upload.part" and part.upload_id == upload.id
    ids = [made["first"].id, made["second"].id, made["last"].id]
    done = client.uploads.complete(upload_id=upload.id, part_ids=ids)
    assert done.id == upload.id and done.status == "completed" and done.file is not None
    assert done.file.purpose == "user_data" and done.file.filename == "parts.bin"
    assert done.file.expires_at is not None and done.file.expires_at - done.file.created_at in (
        7199,
        7200,
        7201,
    )
    assert client.files.content(done.file.id).read() == first + second + last
    assert stored(server, ids) == []  # the parts went once assembled
    with pytest.raises(BadRequestError, match="completed"):
        client.uploads.parts.create(upload_id=upload.id, data=b"more")
    with pytest.raises(BadRequestError, match="completed"):
        client.uploads.complete(upload_id=upload.id, part_ids=ids)


def test_the_bytes_must_add_up(client: OpenAI) -> None:
    before = len(client.files.list().data)
    upload = client.uploads.create(bytes=10, filename="a.txt", mime_type="text/plain", purpose="assistants")
    four = client.uploads.parts.create(upload_id=upload.id, data=b"0123")
    with pytest.raises(BadRequestError) as info:
        client.uploads.complete(upload_id=upload.id, part_ids=[four.id])
    assert info.value.body["param"] == "part_ids"  # type: ignore[index]
    with pytest.raises(BadRequestError) as info:  # more than was declared
        client.uploads.parts.create(upload_id=upload.id, data=b"4567890")
    assert info.value.body["param"] == "data"  # type: ignore[index]
    with pytest.raises(BadRequestError):  # a part named twice
        client.uploads.complete(upload_id=upload.id, part_ids=[four.id, four.id])
    assert len(client.files.list().data) == before  # nothing was created
    six = client.uploads.parts.create(upload_id=upload.id, data=b"456789")
    with pytest.raises(BadRequestError) as info:
        client.uploads.complete(upload_id=upload.id, part_ids=[four.id, six.id], md5="0" * 32)
    assert info.value.body["param"] == "md5"  # type: ignore[index]
    assert len(client.files.list().data) == before
    done = client.uploads.complete(upload_id=upload.id, part_ids=[four.id, six.id])
    assert done.file is not None and client.files.content(done.file.id).read() == b"0123456789"
    with pytest.raises(BadRequestError) as info:  # past the largest file
        client.uploads.create(bytes=9 * 10**9, filename="b", mime_type="text/plain", purpose="assistants")
    assert info.value.body["param"] == "bytes"  # type: ignore[index]
    with pytest.raises(BadRequestError) as info:
        client.uploads.create(bytes=1, filename="b", mime_type="text/plain", purpose="nonsense")  # type: ignore[arg-type]
    assert info.value.body["param"] == "purpose"  # type: ignore[index]


def test_cancel(server: Server, client: OpenAI) -> None:
    upload = client.uploads.create(bytes=6, filename="c.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload_id=upload.id, data=b"abc")
    assert stored(server, [part.id]) == [part.id]
    cancelled = client.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled" and cancelled.file is None
    assert stored(server, [part.id]) == []
    with pytest.raises(BadRequestError, match="cancelled"):
        client.uploads.parts.create(upload_id=upload.id, data=b"def")
    with pytest.raises(BadRequestError, match="cancelled"):
        client.uploads.complete(upload_id=upload.id, part_ids=[part.id])
    with pytest.raises(BadRequestError):
        client.uploads.cancel(upload.id)


def test_another_projects_upload_is_404(server: Server, client: OpenAI) -> None:
    upload = client.uploads.create(bytes=3, filename="d.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload_id=upload.id, data=b"abc")
    other = server.client(KEY_B)
    with pytest.raises(NotFoundError):
        other.uploads.parts.create(upload_id=upload.id, data=b"x")
    with pytest.raises(NotFoundError):
        other.uploads.complete(upload_id=upload.id, part_ids=[part.id])
    with pytest.raises(NotFoundError):
        other.uploads.cancel(upload.id)
    assert client.uploads.complete(upload_id=upload.id, part_ids=[part.id]).status == "completed"


def test_an_expired_upload_takes_nothing(server: Server, client: OpenAI) -> None:
    upload = client.uploads.create(bytes=3, filename="e.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload_id=upload.id, data=b"abc")
    engine = sync_engine(server.env["ASSISTD_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE uploads SET expires_at = expires_at - 7200 WHERE id = :id"), {"id": upload.id}
            )
    finally:
        engine.dispose()
    with pytest.raises(BadRequestError, match="has expired"):
        client.uploads.parts.create(upload_id=upload.id, data=b"x")
    with pytest.raises(BadRequestError, match="has expired"):
        client.uploads.complete(upload_id=upload.id, part_ids=[part.id])
