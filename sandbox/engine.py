"""The Docker engine: containers through docker-py (in threads), exchanges through an async attach.

Control calls (create, start, inspect, list, remove) are rare and go to a small thread pool of
their own (docker-py blocks; they must neither block the event loop nor crowd `to_thread`).
An exchange with a container's runner is the hot path: it opens the Engine API's attach
endpoint on the event loop (a hijacked HTTP connection over the engine's unix or tcp socket),
writes one JSON line to the runner's stdin and reads its JSON reply from the multiplexed stdout.
A fresh attach per exchange means another process may attach to the same container in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import struct
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeVar
from urllib.parse import urlparse

import docker
import docker.errors

from sandbox.config import SandboxConfig
from sandbox.errors import Died, Gone, ReplyTooLarge

LABEL = "assistd.sandbox"
DATA_DIR = "/mnt/data"
THREADS = 8  # concurrent Docker control calls; the engine itself is the bottleneck beyond that
SPOOL_BYTES = 1 << 20  # an output file larger than this waits on disk, not in memory
T = TypeVar("T")
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Engine:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.client: docker.DockerClient | None = None
        self.id = ""  # the engine's identity: sessions are only reused on the same engine
        self.threads = ThreadPoolExecutor(THREADS, thread_name_prefix="sandbox-docker")
        # logs (capped) and figures (base64); files are listed in the reply, copied out apart
        self.max_reply = 256 << 20

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking docker-py call, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.threads, functools.partial(fn, *args))

    async def connect(self) -> str | None:
        """Connect and check the image; None when usable, else why not."""
        try:
            await self.call(self._connect)
        except docker.errors.ImageNotFound:
            return (
                f"the sandbox image {self.config.image} is absent from the Docker engine: "
                "build it with sandbox/image/build-offline.sh (or docker build sandbox/image)"
            )
        except Exception as exc:  # docker.errors.DockerException, requests' connection errors
            return f"the Docker engine is unreachable ({exc})"
        return None

    def _connect(self) -> None:
        if self.client is None:
            self.client = docker.from_env(timeout=60, max_pool_size=32)
        self.id = self.client.info()["ID"]
        self.client.images.get(self.config.image)

    async def close(self) -> None:
        if self.client is not None:
            await self.call(self.client.close)
            self.client = None
        self.threads.shutdown(wait=False)

    def labels(self) -> dict[str, str]:
        return {LABEL: "1", "assistd.namespace": self.config.namespace, "assistd.owner": self.config.owner}

    def _run(self, memory_bytes: int | None = None) -> str:
        c = self.config
        memory = memory_bytes or c.memory_bytes
        assert self.client is not None
        container = self.client.containers.create(
            c.image,
            labels=self.labels(),
            stdin_open=True,
            detach=True,  # else docker-py sets StdinOnce: the first attach to close would end the runner
            network_mode="none",
            read_only=True,
            tmpfs={
                "/tmp": "size=64m,mode=1777",
                DATA_DIR: f"size={c.disk_bytes},uid=1000,gid=1000,mode=0755",
            },
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(c.cpus * 1e9),
            pids_limit=c.pids,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user="1000:1000",
            # no docker-init: the runner is pid 1 itself. docker-init would run as the sandbox's
            # user, dumpable, holding the container's stdio: the code could open /proc/1/fd/0 and
            # /proc/1/fd/1 and read requests or forge replies. The runner reaps orphans instead.
            init=False,
            runtime=c.runtime,
            log_config={"type": "none", "config": {}},  # replies carry files: keep them off disk
        )
        try:
            container.start()
        except BaseException:
            container.remove(force=True)
            raise
        return str(container.id)

    async def run(self, memory_bytes: int | None = None) -> str:
        """A started container whose runner has answered a ping (memory: the config's, unless given)."""
        creating = asyncio.ensure_future(self.call(self._run, memory_bytes))
        try:
            cid = await asyncio.shield(creating)
        except asyncio.CancelledError:  # (a clean stop) the thread goes on: remove what it makes
            with contextlib.suppress(Exception):
                await self.remove(await creating)
            raise
        try:
            await asyncio.wait_for(self.exchange(cid, {}), 30)
        except BaseException:
            await self.remove(cid)
            raise
        return cid

    async def remove(self, cid: str) -> None:
        def remove() -> None:
            assert self.client is not None
            try:
                self.client.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # "removal already in progress"
                if exc.status_code != 409:
                    raise

        await self.call(remove)

    async def state(self, cid: str) -> dict[str, Any]:
        def inspect() -> dict[str, Any]:
            assert self.client is not None
            try:
                return dict(self.client.api.inspect_container(cid)["State"])
            except docker.errors.NotFound:
                return {}

        return await self.call(inspect)

    async def list(self) -> list[dict[str, Any]]:
        """Every sandbox container of our namespace, running or not."""

        def containers() -> list[dict[str, Any]]:
            assert self.client is not None
            wanted = [f"{LABEL}=1", f"assistd.namespace={self.config.namespace}"]
            return list(self.client.api.containers(all=True, filters={"label": wanted}))

        return await self.call(containers)

    async def copy_out(self, cid: str, path: str, size: int) -> IO[bytes] | None:
        """The file at `path` in the container, read in chunks into a spooled temporary file
        (in memory up to SPOOL_BYTES, on disk beyond); None when it is gone or not `size` bytes.

        `docker cp` (the archive endpoint) cannot see a tmpfs mount such as /mnt/data, so the
        bytes come from a `cat` run as the sandbox's user, read from the exec's stream.
        """
        assert self.client is not None
        api = self.client.api
        cat = functools.partial(api.exec_create, cid, ["cat", "--", path], stderr=False, user="1000:1000")
        exec_id = (await self.call(cat))["Id"]
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(SPOOL_BYTES)
        try:
            stream = self._hijack(f"/exec/{exec_id}/start", b'{"Detach":false,"Tty":false}')
            total = await _read_stdout(stream, spool.write, size)
            for _ in range(100):  # the engine records the exit just after the stream ends
                state = await self.call(api.exec_inspect, exec_id)
                if not state.get("Running"):
                    break
                await asyncio.sleep(0.02)
            if total != size or state.get("ExitCode") != 0:
                spool.close()
                return None
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    async def _hijack(self, path: str, body: bytes = b"") -> Stream:
        """POST `path` upgraded to a raw stream (attach, exec start) on the engine's socket."""
        assert self.client is not None
        api = self.client.api
        socket_path = getattr(getattr(api, "_custom_adapter", None), "socket_path", None)
        if socket_path:
            reader, writer = await asyncio.open_unix_connection(socket_path, limit=1 << 26)
        else:
            url = urlparse(api.base_url)
            if url.scheme != "http":
                raise Gone(f"attach needs a unix or plain tcp engine socket, not {api.base_url}")
            reader, writer = await asyncio.open_connection(url.hostname, url.port or 2375, limit=1 << 26)
        writer.write(
            f"POST /v{api.api_version}{path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
            f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except BaseException:
            writer.close()
            raise
        status = head.split(b" ", 2)[1]
        if status not in (b"101", b"200"):
            writer.close()
            raise Gone(f"{path.split('?')[0]}: HTTP {status.decode()}")
        return reader, writer

    async def _attach(self, cid: str) -> Stream:
        return await self._hijack(f"/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1")

    async def exchange(self, cid: str, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request to the container's runner and return its reply (no timeout here)."""
        reader, writer = await self._attach(cid)
        try:
            request = {**request, "id": uuid.uuid4().hex}
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            return await _read_reply(reader, request["id"], self.max_reply)
        finally:
            writer.close()


async def _read_reply(reader: asyncio.StreamReader, request_id: str, limit: int) -> dict[str, Any]:
    """Frames of the multiplexed stream: 8-byte header (stream, 0, 0, 0, size), then the payload."""
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            stream, size = struct.unpack(">BxxxI", await reader.readexactly(8))
            payload = await reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise Died() from exc
        if stream != 1:
            continue  # the runner's own stderr: only before its setup, nothing to answer
        while b"\n" in payload:
            head, _, payload = payload.partition(b"\n")
            line, chunks, total = b"".join(chunks) + head, [], 0
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # not the runner's (the code may find and write to its channel)
            if isinstance(reply, dict) and reply.get("id") == request_id:  # else: another attach's
                return reply
        chunks.append(payload)
        total += len(payload)
        if total > limit:
            raise ReplyTooLarge(f"the reply exceeds {limit >> 20} MiB")


async def _read_stdout(hijack: Awaitable[Stream], write: Callable[[bytes], object], limit: int) -> int:
    """Copy a multiplexed stream's stdout frames to `write` until it ends or passes `limit`; its size."""
    reader, writer = await hijack
    total = 0
    try:
        while total <= limit:
            try:
                stream, size = struct.unpack(">BxxxI", await reader.readexactly(8))
                payload = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                return total  # the end of the stream: cat is done
            if stream == 1:
                total += len(payload)
                if total <= limit:
                    write(payload)
        return total
    finally:
        writer.close()
