"""The Containers API through the official SDK, in both modes (bytes on local disk or in S3).

No code runs here: these are the rows and bytes a code interpreter session is built from.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from typing import Any

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI
from sqlalchemy import update

from core.containers import CONTAINERS
from core.db import sync_engine
from tests.conftest import KEY_A, KEY_B, Server, in_every_mode

server = in_every_mode()  # and `serve --workers 2`: streams, polls and ends cross its hub


def upload(client: OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="user_data").id


def unique(prefix: str) -> str:
    """A name no other test's container has (the servers are shared by the whole session)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def age(server: Server, container_id: str, seconds: float) -> None:
    """Move the container's last activity `seconds` into the past (time passes)."""
    engine = sync_engine(server.env["ASSISTD_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(
            update(CONTAINERS)
            .where(CONTAINERS.c.id == container_id)
            .values(last_active_at=time.time() - seconds)
        )
    engine.dispose()


def raw(server: Server, method: str, path: str, key: str = KEY_A, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/v1{path}", headers={"Authorization": f"Bearer {key}"}, **kw)


def test_create_with_files_retrieve_delete(client: OpenAI) -> None:
    data = {"brief.txt": b"first notes", "table.csv": os.urandom(2 * 1024 * 1024 + 5)}
    ids = [upload(client, name, body) for name, body in data.items()]
    made = client.containers.create(
        name="analysis", file_ids=ids, expires_after={"anchor": "last_active_at", "minutes": 30}
    )
    assert made.id.startswith("cntr_") and made.object == "container" and made.name == "analysis"
    assert made.status == "running" and made.memory_limit == "1g"  # OpenAI's default
    assert made.expires_after is not None
    assert (made.expires_after.anchor, made.expires_after.minutes) == ("last_active_at", 30)
    assert made.last_active_at is not None and made.last_active_at >= made.created_at
    assert client.containers.retrieve(made.id).model_dump() == made.model_dump()

    files = client.containers.files.list(made.id, order="asc")
    assert [f.path for f in files] == ["/mnt/data/brief.txt", "/mnt/data/table.csv"]
    assert all(f.source == "user" and f.container_id == made.id for f in files)
    assert [f.bytes for f in files] == [len(b) for b in data.values()]
    client.files.delete(ids[1])  # the container holds a copy: the File's deletion does not reach it
    for f, body in zip(files, data.values()):
        assert client.containers.files.content.retrieve(f.id, container_id=made.id).read() == body

    assert client.containers.delete(made.id) is None
    with pytest.raises(NotFoundError):
        client.containers.retrieve(made.id)
    with pytest.raises(NotFoundError):
        client.containers.files.content.retrieve(files.data[0].id, container_id=made.id)
    with pytest.raises(NotFoundError):
        client.containers.delete(made.id)


def test_defaults_and_the_delete_answer(server: Server, client: OpenAI) -> None:
    made = client.containers.create(name="plain")
    assert made.expires_after is not None and made.expires_after.minutes == 20  # OpenAI's default
    assert client.containers.files.list(made.id).data == []
    gone = raw(server, "DELETE", f"/containers/{made.id}")
    assert gone.json() == {"id": made.id, "object": "container.deleted", "deleted": True}


def test_list_pages_and_name_filter(client: OpenAI) -> None:
    name = unique("listed")
    made = [client.containers.create(name=name).id for _ in range(3)]
    other = client.containers.create(name=unique("other")).id
    first = client.containers.list(name=name, limit=2)
    assert [c.id for c in first.data] == made[:0:-1] and first.has_more  # newest first
    second = client.containers.list(name=name, limit=2, after=first.data[-1].id)
    assert [c.id for c in second.data] == [made[0]] and not second.has_more
    assert [c.id for c in client.containers.list(name=name, limit=1)] == made[::-1]  # auto-paging
    assert [c.id for c in client.containers.list(name=name, order="asc")] == made
    assert other in [c.id for c in client.containers.list(limit=100)]
    assert client.containers.list(name=unique("nobody")).data == []


def test_container_files(server: Server, client: OpenAI) -> None:
    made = client.containers.create(name="files")
    age(server, made.id, 300)  # five minutes idle: adding a file makes it active again
    body = b"x = 1\n" * 1000
    uploaded = client.containers.files.create(made.id, file=("script.py", io.BytesIO(body)))
    assert uploaded.object == "container.file" and uploaded.path == "/mnt/data/script.py"
    assert (uploaded.bytes, uploaded.source, uploaded.container_id) == (len(body), "user", made.id)
    assert (client.containers.retrieve(made.id).last_active_at or 0) >= time.time() - 60

    file_id = upload(client, "dir/report.md", b"# report")  # the File's name may hold a path
    copied = client.containers.files.create(made.id, file_id=file_id)
    assert copied.path == "/mnt/data/report.md" and copied.bytes == len(b"# report")
    assert copied.id not in (file_id, uploaded.id)

    listed = client.containers.files.list(made.id, limit=1)
    assert [f.id for f in listed.data] == [copied.id] and listed.has_more
    assert [f.id for f in client.containers.files.list(made.id, limit=1)] == [copied.id, uploaded.id]
    assert [f.id for f in client.containers.files.list(made.id, order="asc")] == [uploaded.id, copied.id]
    got = client.containers.files.retrieve(uploaded.id, container_id=made.id)
    assert got.model_dump() == uploaded.model_dump()
    content = client.containers.files.content.retrieve(uploaded.id, container_id=made.id)
    assert content.read() == body
    assert "script.py" in content.response.headers["content-disposition"]

    assert client.containers.files.delete(uploaded.id, container_id=made.id) is None
    with pytest.raises(NotFoundError):
        client.containers.files.retrieve(uploaded.id, container_id=made.id)
    with pytest.raises(NotFoundError):
        client.containers.files.content.retrieve(uploaded.id, container_id=made.id)
    assert [f.id for f in client.containers.files.list(made.id)] == [copied.id]
    gone = raw(server, "DELETE", f"/containers/{made.id}/files/{copied.id}")
    assert gone.json() == {"id": copied.id, "object": "container.file.deleted", "deleted": True}

    other = client.containers.create(name="other")  # a file is found only in its own container
    kept = client.containers.files.create(other.id, file_id=file_id)
    with pytest.raises(NotFoundError):
        client.containers.files.retrieve(kept.id, container_id=made.id)


def test_a_path_holds_one_file(server: Server, client: OpenAI) -> None:
    """As in the sandbox: a file added at a path replaces the one there (its bytes go too)."""
    older, newer = upload(client, "same.txt", b"older"), upload(client, "dir/same.txt", b"newer")
    made = client.containers.create(name="paths", file_ids=[older, newer, upload(client, "b.txt", b"b")])
    files = client.containers.files.list(made.id, order="asc").data
    assert [(f.path, f.bytes) for f in files] == [("/mnt/data/same.txt", 5), ("/mnt/data/b.txt", 1)]
    assert client.containers.files.content.retrieve(files[0].id, container_id=made.id).read() == b"newer"
    again = client.containers.files.create(made.id, file=("b.txt", b"bb"))
    assert [f.id for f in client.containers.files.list(made.id, order="asc")] == [files[0].id, again.id]
    with pytest.raises(NotFoundError):
        client.containers.files.content.retrieve(files[1].id, container_id=made.id)
    assert client.containers.files.content.retrieve(again.id, container_id=made.id).read() == b"bb"


def test_another_projects_containers_are_not_there(server: Server, client: OpenAI) -> None:
    file_id = upload(client, "mine.txt", b"mine")
    made = client.containers.create(name=unique("mine"), file_ids=[file_id])
    (copy,) = client.containers.files.list(made.id)
    theirs = server.client(KEY_B)
    for call in (
        lambda: theirs.containers.retrieve(made.id),
        lambda: theirs.containers.delete(made.id),
        lambda: theirs.containers.files.list(made.id),
        lambda: theirs.containers.files.create(made.id, file=("x.txt", b"x")),
        lambda: theirs.containers.files.retrieve(copy.id, container_id=made.id),
        lambda: theirs.containers.files.content.retrieve(copy.id, container_id=made.id),
        lambda: theirs.containers.files.delete(copy.id, container_id=made.id),
        lambda: theirs.containers.create(name="stolen", file_ids=[file_id]),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert made.id not in [c.id for c in theirs.containers.list(name=made.name)]
    own = theirs.containers.create(name="theirs")
    with pytest.raises(NotFoundError):  # A's file, B's container
        theirs.containers.files.create(own.id, file_id=file_id)
    assert client.containers.files.content.retrieve(copy.id, container_id=made.id).read() == b"mine"


def test_missing_files_are_404s_before_anything_is_kept(client: OpenAI) -> None:
    name = unique("never")
    real = upload(client, "real.txt", b"real")
    with pytest.raises(NotFoundError) as caught:
        client.containers.create(name=name, file_ids=[real, "file-missing"])
    assert caught.value.body["message"] == "No file found with id 'file-missing'."  # type: ignore[index]
    assert client.containers.list(name=name).data == []
    made = client.containers.create(name="target")
    with pytest.raises(NotFoundError):
        client.containers.files.create(made.id, file_id="file-missing")
    with pytest.raises(NotFoundError):
        client.containers.files.create("cntr_missing", file=("a.txt", b"a"))
    assert client.containers.files.list(made.id).data == []


def test_expired_containers_stay_readable_and_take_no_files(server: Server, client: OpenAI) -> None:
    made = client.containers.create(
        name=unique("brief"), expires_after={"anchor": "last_active_at", "minutes": 1}
    )
    kept = client.containers.files.create(made.id, file=("kept.txt", b"kept"))
    age(server, made.id, 61)  # a minute passes without activity
    assert client.containers.retrieve(made.id).status == "expired"
    assert [c.status for c in client.containers.list(name=made.name)] == ["expired"]
    with pytest.raises(BadRequestError) as caught:
        client.containers.files.create(made.id, file=("late.txt", b"late"))
    assert "expired" in caught.value.message
    assert [f.id for f in client.containers.files.list(made.id)] == [kept.id]
    assert client.containers.files.content.retrieve(kept.id, container_id=made.id).read() == b"kept"
    client.containers.delete(made.id)


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"memory_limit": "4g"}, "memory_limit", "'1g'"),  # the test servers keep the default ceiling
        ({"memory_limit": "2g"}, "memory_limit", None),
        (
            {"network_policy": {"type": "allowlist", "allowed_domains": ["pypi.org"]}},
            "network_policy",
            "no network",
        ),
        ({"skills": [{"type": "skill_reference", "skill_id": "skill_1"}]}, "skills", "not supported"),
        ({"expires_after": {"anchor": "last_active_at", "minutes": 0}}, "expires_after.minutes", None),
        ({"expires_after": {"anchor": "last_active_at", "minutes": 10_081}}, "expires_after.minutes", None),
        ({"expires_after": {"anchor": "created_at", "minutes": 5}}, "expires_after.anchor", None),
        ({"name": "n" * 257}, "name", None),
        ({"extra_body": {"colour": "blue"}}, "colour", "Unknown parameter"),
    ],
)
def test_bad_containers_are_400s(
    client: OpenAI, params: dict[str, Any], param: str, words: str | None
) -> None:
    params = dict(params)  # the parameters are shared by both modes' runs
    name = params.pop("name", None) or unique("bad")
    with pytest.raises(BadRequestError) as caught:
        client.containers.create(name=name, **params)
    error = caught.value.body
    assert error["type"] == "invalid_request_error" and error["param"] == param  # type: ignore[index]
    assert words is None or words in error["message"]  # type: ignore[index]
    assert client.containers.list(name=name).data == []


def test_what_the_sandbox_can_do_is_accepted(client: OpenAI) -> None:
    made = client.containers.create(name="offline", memory_limit="1g", network_policy={"type": "disabled"})
    assert made.memory_limit == "1g"


def test_bad_container_files_are_400s(server: Server, client: OpenAI) -> None:
    made = client.containers.create(name="strict")
    for name in ("..", "a/", "n" * 256 + ".txt"):
        with pytest.raises(BadRequestError) as caught:
            client.containers.files.create(made.id, file=(name, b"x"))
        assert caught.value.body["param"] == "file"  # type: ignore[index]
    empty = raw(server, "POST", f"/containers/{made.id}/files", json={})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "file_id"
    typed = raw(server, "POST", f"/containers/{made.id}/files", json={"file_id": 5})
    assert typed.status_code == 400 and typed.json()["error"]["code"] == "invalid_type"
    garbled = raw(server, "POST", f"/containers/{made.id}/files", content=b"{nope")
    assert garbled.status_code == 400 and "parse the JSON body" in garbled.json()["error"]["message"]
    no_file = raw(server, "POST", f"/containers/{made.id}/files", data={"other": "x"}, files={"x": b""})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    assert client.containers.files.list(made.id).data == []
