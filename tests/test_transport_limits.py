"""Limits of the transport, tried over raw sockets against a real `assistd serve`: the key and the
body's size are checked before the body is read, half-sent requests are cut off, a 500 keeps the
connection, and /metrics can require a token."""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests import procs
from tests.conftest import KEY_A, ScriptedModel, Server, fresh_pg_database, stop

FILE_LIMIT = 1 << 20
REQUEST_LIMIT = 256 << 10
HEADER_TIMEOUT = 1.0
METRICS_TOKEN = "metrics-secret"


@pytest.fixture(scope="module")
def limited(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`assistd serve` with small limits (started as procs.start_embedded does, with a longer wait
    for its start on a loaded machine)."""
    tmp = tmp_path_factory.mktemp("limits")
    port = procs.free_port()
    env = procs.base_env(model_server) | {
        "ASSISTD_DATABASE_URL": f"sqlite:///{tmp}/assistd.db",
        "ASSISTD_REDIS_NAMESPACE": procs.TEST_NAMESPACE + "limits",
        "ASSISTD_FILES_DIR": str(tmp / "files"),
        "ASSISTD_MAX_FILE_BYTES": str(FILE_LIMIT),
        "ASSISTD_MAX_REQUEST_BYTES": str(REQUEST_LIMIT),
        "ASSISTD_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "ASSISTD_METRICS_TOKEN": METRICS_TOKEN,
    }
    proc = procs.spawn(
        [sys.executable, "-m", "assistd", "serve", "--port", str(port)], env, tmp / "serve.log"
    )
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=180)
        server = Server("embedded", f"http://127.0.0.1:{port}", env, [proc])
        yield server
    finally:
        stop([proc])


def files_dir(server: Server) -> Path:
    return Path(server.env["ASSISTD_FILES_DIR"])


def connect(server: Server, timeout: float = 5) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: assistd"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body (every answer this file expects has one)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (reading what it sends)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def error_of(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def file_rows(server: Server) -> list[Any]:
    return list(server.client().files.list())


# -- the key comes before the body (finding 2) --


@pytest.mark.parametrize(
    ("path", "kind", "auth"),
    [
        ("/v1/files", "multipart/form-data; boundary=b", "Bearer sk-wrong-key-123456"),
        ("/v1/assistants", "application/json", None),
    ],
)
def test_a_wrong_or_missing_key_is_answered_before_the_body_arrives(
    limited: Server, path: str, kind: str, auth: str | None
) -> None:
    headers = {"Content-Type": kind, "Content-Length": str(200 << 20)} | (
        {"Authorization": auth} if auth else {}
    )
    with connect(limited, timeout=3) as sock:
        sock.sendall(head("POST", path, headers))  # and not one byte of the body
        status, got, body = read_response(sock)
        assert status == 401 and error_of(body)["type"] == "invalid_request_error"
        assert got.get("connection") == "close" and closed(sock, 3)  # the body is never read


def test_a_body_declared_too_large_is_refused_unread(limited: Server) -> None:
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(200 << 20),
        "Authorization": f"Bearer {KEY_A}",
    }
    with connect(limited, timeout=3) as sock:
        sock.sendall(head("POST", "/v1/assistants", headers))
        status, _, body = read_response(sock)
    assert status == 413 and str(REQUEST_LIMIT) in error_of(body)["message"]


def stream_until_answered(sock: socket.socket, chunk: bytes, most: int) -> int:
    """Send `chunk` as HTTP chunks until the server answers (or `most` bytes went); bytes sent."""
    sent = 0
    while sent < most and not select.select([sock], [], [], 0)[0]:
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            break  # the server stopped reading
        sent += len(chunk)
        time.sleep(0.002)  # lets the answer overtake the stream
    return sent


def test_a_chunked_json_body_is_cut_off_at_the_cap(limited: Server) -> None:
    headers = {
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        "Authorization": f"Bearer {KEY_A}",
    }
    with connect(limited) as sock:
        sock.sendall(head("POST", "/v1/assistants", headers) + b"1\r\n[\r\n")
        sent = stream_until_answered(sock, b" " * 16384, most=64 * REQUEST_LIMIT)
        status, got, body = read_response(sock)
    assert status == 413 and str(REQUEST_LIMIT) in error_of(body)["message"]
    assert sent < 64 * REQUEST_LIMIT and got.get("connection") == "close"  # answered mid-stream


def test_an_upload_stops_at_the_file_limit_and_leaves_nothing(limited: Server) -> None:
    headers = {
        "Content-Type": "multipart/form-data; boundary=XyZ",
        "Transfer-Encoding": "chunked",
        "Authorization": f"Bearer {KEY_A}",
    }
    start = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
    )
    with connect(limited) as sock:
        sock.sendall(head("POST", "/v1/files", headers) + b"%x\r\n%s\r\n" % (len(start), start))
        sent = stream_until_answered(sock, b"x" * 65536, most=64 * FILE_LIMIT)
        status, _, body = read_response(sock)
    assert status == 413 and error_of(body)["param"] == "file"
    assert sent < 64 * FILE_LIMIT  # answered mid-stream, not at its end
    assert file_rows(limited) == [] and list(files_dir(limited).iterdir()) == []


@pytest.mark.parametrize("size", [FILE_LIMIT + 1, 8 * FILE_LIMIT])
def test_the_sdk_gets_a_413_for_a_file_over_the_limit(limited: Server, size: int) -> None:
    client = limited.client(max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=("big.txt", io.BytesIO(b"y" * size)), purpose="assistants")
    assert caught.value.status_code == 413 and caught.value.body["param"] == "file"  # type: ignore[index]
    assert file_rows(limited) == [] and list(files_dir(limited).iterdir()) == []
    assert (
        client.files.create(file=("ok.txt", io.BytesIO(b"y" * FILE_LIMIT)), purpose="assistants").bytes
        == FILE_LIMIT
    )
    client.files.delete(file_rows(limited)[0].id)


def test_a_container_files_upload_has_the_file_limit_and_its_json_the_body_limit(limited: Server) -> None:
    client = limited.client(max_retries=0)
    made = client.containers.create(name="uploads")
    size = 2 * REQUEST_LIMIT  # past a JSON body's cap, within a file's
    added = client.containers.files.create(made.id, file=("mid.bin", io.BytesIO(b"z" * size)))
    assert added.bytes == size
    with pytest.raises(openai.APIStatusError) as caught:
        client.containers.files.create(made.id, file=("big.bin", io.BytesIO(b"z" * (FILE_LIMIT + 1))))
    assert caught.value.status_code == 413 and caught.value.body["param"] == "file"  # type: ignore[index]
    padded = json.dumps({"file_id": "file-x", "pad": " " * size})
    answer = httpx.post(
        f"{limited.url}/v1/containers/{made.id}/files",
        content=padded,
        headers={"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 413 and str(REQUEST_LIMIT) in answer.json()["error"]["message"]
    assert [f.id for f in client.containers.files.list(made.id)] == [added.id]
    client.containers.delete(made.id)
    assert list(files_dir(limited).iterdir()) == []  # the bytes went with the container


def test_an_upload_part_has_the_part_limit(limited: Server) -> None:
    """A part of an upload (POST /v1/uploads/{id}/parts) may be up to 64 MB, past a JSON body's cap."""
    client = limited.client(max_retries=0)
    size = 2 * REQUEST_LIMIT
    upload = client.uploads.create(
        bytes=size, filename="p.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    part = client.uploads.parts.create(upload_id=upload.id, data=b"p" * size)
    headers = {
        "Content-Type": "multipart/form-data; boundary=b",
        "Content-Length": str(65 << 20),  # past 64 MiB and the form's framing
        "Authorization": f"Bearer {KEY_A}",
    }
    with connect(limited, timeout=3) as sock:
        sock.sendall(head("POST", f"/v1/uploads/{upload.id}/parts", headers))
        status, _, body = read_response(sock)
    assert status == 413 and error_of(body)["param"] == "data"
    done = client.uploads.complete(upload_id=upload.id, part_ids=[part.id])
    assert done.file is not None and done.file.bytes == size
    client.files.delete(done.file.id)
    assert list(files_dir(limited).iterdir()) == []


# -- half-sent requests (finding 11) --


def test_half_sent_headers_are_cut_off_after_the_timeout(limited: Server) -> None:
    socks = [connect(limited) for _ in range(30)]
    try:
        for i, sock in enumerate(socks[:20]):
            sock.sendall(f"GET /v1/files HTTP/1.1\r\nHost: assistd\r\nX-Slow-{i}: ".encode())
        # socks[20:] send nothing at all
        time.sleep(HEADER_TIMEOUT + 1)
        assert all(closed(sock, 2) for sock in socks)
    finally:
        for sock in socks:
            sock.close()


def test_a_kept_alive_connection_is_cut_off_inside_its_next_headers(limited: Server) -> None:
    with connect(limited) as sock:
        sock.sendall(head("GET", "/healthz", {}))
        assert read_response(sock)[0] == 200
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle time counts against the keep-alive timeout only
        sock.sendall(head("GET", "/healthz", {}))
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: ass")
        assert closed(sock, HEADER_TIMEOUT + 2)


def test_oversized_headers_get_a_431(limited: Server) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: assistd\r\nX-Big: ")
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(1024):  # 16 MiB, far past the default 64 KiB
                sock.sendall(b"a" * 16384)
        # the 431 was written before the close; on a reset it may be lost, so it is not required


# -- errors keep the connection; keys (finding 13) --


def test_a_500_keeps_the_connection_open(limited: Server) -> None:
    directory = files_dir(limited)
    upload = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n--XyZ--\r\n'
    )
    auth = {"Authorization": f"Bearer {KEY_A}"}
    shutil.rmtree(directory)
    directory.write_text("the files directory is a file now: every upload fails")
    try:
        with connect(limited) as sock:
            sock.sendall(
                head(
                    "POST",
                    "/v1/files",
                    auth
                    | {
                        "Content-Type": "multipart/form-data; boundary=XyZ",
                        "Content-Length": str(len(upload)),
                    },
                )
                + upload
            )
            status, headers, body = read_response(sock)
            assert status == 500 and error_of(body)["type"] == "server_error"
            assert headers.get("connection") != "close"
            sock.sendall(head("GET", "/v1/files", auth))
            status, _, body = read_response(sock)
            assert status == 200 and json.loads(body)["data"] == []
    finally:
        directory.unlink()
        directory.mkdir()


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"Bearer {KEY_A}", 200),
        (f"bearer {KEY_A}", 200),  # the scheme is case-insensitive (RFC 9110 11.1)
        (f"Bearer   {KEY_A}", 200),  # 1*SP before the credentials (RFC 9110 11.4)
        (f"Bearer {KEY_A[:-1]}", 401),
        (f"Bearer {KEY_A}x", 401),
        (f"Basic {KEY_A}", 401),
        ("Bearer", 401),
    ],
)
def test_authorization_header_forms(limited: Server, header: str, status: int) -> None:
    assert httpx.get(f"{limited.url}/v1/files", headers={"Authorization": header}).status_code == status


# -- /metrics behind a token (finding 4) --


def test_api_metrics_need_the_token_when_one_is_set(limited: Server) -> None:
    url = f"{limited.url}/metrics"
    refused = httpx.get(url)
    assert refused.status_code == 401 and error_of(refused.content)["type"] == "invalid_request_error"
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    got = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert got.status_code == 200 and "assistd_http_requests_total" in got.text
    assert httpx.get(f"{limited.url}/healthz").status_code == 200  # probes need no token


def test_worker_metrics_need_the_token_when_one_is_set(model_server: ScriptedModel, tmp_path: Path) -> None:
    if not procs.redis_available():
        pytest.skip("Redis is not reachable")
    port = procs.free_port()
    env = procs.base_env(model_server) | {
        "ASSISTD_DATABASE_URL": fresh_pg_database(),
        "ASSISTD_REDIS_URL": procs.REDIS_URL,
        "ASSISTD_REDIS_NAMESPACE": procs.TEST_NAMESPACE + "metrics",
        "ASSISTD_WORKER_METRICS_PORT": str(port),
        "ASSISTD_METRICS_TOKEN": METRICS_TOKEN,
    }
    subprocess.run(
        [sys.executable, "-m", "assistd", "migrate"],
        env=os.environ | env,
        check=True,
        cwd=procs.ROOT,
        capture_output=True,
    )
    worker = procs.spawn([sys.executable, "-m", "assistd", "worker"], env, tmp_path / "worker.log")
    try:
        url = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{url}/healthz", worker, timeout=120)  # probes need no token
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        got = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert got.status_code == 200 and "assistd_" in got.text
    finally:
        stop([worker])
