"""A Redis primary, its replica and three sentinels as real processes on 127.0.0.1, for the tests
that run Assistd on Redis Sentinel (tests/contract/test_sentinel.py, tests/test_failover.py).

The machine's own Redis (6379) stays a lone server: other tests use it. `redis-server --sentinel`
is Sentinel itself (Debian's redis-sentinel package only adds a service around the same binary).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.procs import ServiceMissing, free_port, spawn, stop

SERVICE = "mymaster"
# Short, so a failover takes a few seconds: a primary is down after 1 s without an answer, and a
# failover that stalls is given up after 3 s (and not tried again before 6 s).
DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS = 1000, 3000


class SentinelGroup:
    """`start()` the processes, `url` for ASSISTD_REDIS_URL, `failover()` or `kill_primary()`."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("redis-server") is None:
            raise ServiceMissing("redis-server")
        self.tmp = tmp
        self.ports = [free_port(), free_port()]  # the first starts as the primary
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.servers: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelGroup:
        primary, replica = self.ports
        self._server(primary)
        self._server(replica, f"127.0.0.1 {primary}")
        for port in self.sentinel_ports:
            conf = self.tmp / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one each
            conf.write_text(
                f"bind 127.0.0.1\nport {port}\ndir {self.tmp}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            )
            log = self.tmp / f"sentinel-{port}.log"
            self.sentinels.append(spawn(["redis-server", str(conf), "--sentinel"], {}, log))
        self.wait_settled(primary)
        return self

    def _server(self, port: int, replica_of: str | None = None) -> None:
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.tmp)]
        args += ["--save", "", "--appendonly", "no", "--dbfilename", f"dump-{port}.rdb"]
        args += ["--replicaof", *replica_of.split()] if replica_of else []
        self.servers[port] = spawn(args, {}, self.tmp / f"redis-{port}.log")

    def ask(self, port: int, *command: str) -> object:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True) as r:
            return r.execute_command(*command)

    def primary(self) -> int:
        """The primary's port, as the first sentinel sees it."""
        where = self.ask(self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        assert isinstance(where, list)
        return int(where[1])

    def wait_settled(self, primary: int, timeout: float = 30) -> None:
        """Until every sentinel names `primary`, which has a replica in sync that they all know."""
        deadline = time.time() + timeout
        while True:
            try:
                if self._settled(primary):
                    return
            except (redis.RedisError, AssertionError, IndexError):
                pass
            if time.time() > deadline:
                raise AssertionError(f"sentinels did not settle on {primary}; logs in {self.tmp}")
            time.sleep(0.1)

    def _settled(self, primary: int) -> bool:
        replica = next(p for p in self.ports if p != primary)
        info = self.ask(replica, "INFO", "replication")
        assert isinstance(info, dict)
        if info.get("master_port") != primary or info.get("master_link_status") != "up":
            return False
        for port in self.sentinel_ports:
            where = self.ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            known = self.ask(port, "SENTINEL", "REPLICAS", SERVICE)
            assert isinstance(where, list) and isinstance(known, list)
            # the sentinel has the replica's own INFO (its link to the primary is "ok" there): until
            # then it is no candidate, and a failover would fail with NOGOODSLAVE
            up = [
                r
                for r in known
                if int(r["port"]) == replica
                and "s_down" not in r["flags"]
                and r["master-link-status"] == "ok"
            ]
            if int(where[1]) != primary or not up:
                return False
        return True

    def failover(self) -> int:
        """A graceful failover (`SENTINEL FAILOVER`): the replica becomes the primary; its port."""
        old = self.primary()
        new = next(p for p in self.ports if p != old)
        self.start_failover()
        self.wait_settled(new)
        return new

    def start_failover(self) -> None:
        """Send `SENTINEL FAILOVER`, again while a sentinel finds no replica fit to promote yet."""
        deadline = time.time() + 15
        while True:
            try:
                self.ask(self.sentinel_ports[0], "SENTINEL", "FAILOVER", SERVICE)
                return
            except redis.ResponseError as exc:
                if "NOGOODSLAVE" not in str(exc) or time.time() > deadline:
                    raise
                time.sleep(0.2)

    def kill_primary(self) -> int:
        """SIGKILL the primary, wait for the sentinels to promote the replica, then start the dead
        one again (empty: no persistence) as its replica; the new primary's port."""
        old = self.primary()
        new = next(p for p in self.ports if p != old)
        self.servers[old].kill()
        self.servers[old].wait()
        deadline = time.time() + 30
        # Not before the sentinels name the new primary: an empty server coming back at the old
        # address while it is still the primary would be taken for it, and the data lost.
        while self.primary() != new:
            assert time.time() < deadline, f"no failover after the primary died; logs in {self.tmp}"
            time.sleep(0.1)
        self._server(old)  # Sentinel turns it into the new primary's replica
        self.wait_settled(new)
        return new

    def stop(self) -> None:
        stop(self.sentinels + list(self.servers.values()))
