"""What the fuzz test compares around a request: seeded objects, the project's row counts, one object's state.

The seeds give generated requests real ids to address, so they reach past the 404s. A fuzzed DELETE
may remove a seed; `heal` puts back whatever is gone, so later requests still find it.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import httpx
import psycopg

PROJECT = "proj_a"  # KEY_A's project (tests.procs.API_KEYS)
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}

# Rows only the API writes. Workers write messages and files of a run (run_id set), so those are
# left out: a run started by an earlier 2xx request may add them while a later 4xx is checked.
COUNTS = {
    "assistants": "",
    "threads": "",
    "runs": "",
    "vector_stores": "",
    "vector_store_files": "",
    "vector_store_file_batches": "",
    "messages": " AND run_id IS NULL",
    "files": " AND run_id IS NULL",
    "containers": "",
    "container_files": " AND source = 'user'",  # a container's code writes files of its own
}
COUNT_SQL = "SELECT " + ", ".join(
    f"(SELECT count(*) FROM {table} WHERE project = {{p}}{extra})" for table, extra in COUNTS.items()
)


class Rows:
    """Row counts of the project's objects, read straight from the server's database."""

    def __init__(self, database_url: str) -> None:
        self.sqlite: sqlite3.Connection | None = None
        self.pg: psycopg.Connection[Any] | None = None
        if database_url.startswith("sqlite"):
            path = database_url.split(":///", 1)[1]
            self.sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            self.pg = psycopg.connect(database_url, autocommit=True)

    def counts(self) -> dict[str, int]:
        if self.sqlite is not None:
            row = self.sqlite.execute(COUNT_SQL.format(p="?"), [PROJECT] * len(COUNTS)).fetchone()
        else:
            assert self.pg is not None
            row = self.pg.execute(COUNT_SQL.format(p="%s"), [PROJECT] * len(COUNTS)).fetchone()
        assert row is not None
        return dict(zip(COUNTS, row))

    def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.pg is not None:
            self.pg.close()


# Fields that move on their own after a 2xx request elsewhere (ingestion of files attached by an
# earlier request finishes in the background); row counts still catch a 4xx that attaches a file.
BACKGROUND_FIELDS = {"file_counts", "usage_bytes", "status", "last_active_at", "expires_at", "last_error"}


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    if str(obj.get("object", "")).startswith("vector_store"):
        return {k: v for k, v in obj.items() if k not in BACKGROUND_FIELDS}
    return obj


class Seeds:
    """Real objects of the project, by the path parameter that names them."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.ids: dict[str, str] = {}
        self.requests = 0

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        self.requests += 1
        return self.http.request(method, path, **kw)

    def make(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = self.call(method, path, **kw)
        assert resp.status_code == 200, f"seeding {method} {path}: {resp.status_code} {resp.text[:300]}"
        return resp.json()  # type: ignore[no-any-return]

    def wait(self, path: str, done: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            obj = self.make("GET", path)
            if done(obj) or time.monotonic() > deadline:
                return obj
            time.sleep(0.1)

    def exists(self, path: str) -> bool:
        return self.call("GET", path).status_code == 200

    def heal(self) -> None:
        """Create what is missing, parents before children (the first call creates everything)."""
        i = self.ids
        if "assistant_id" not in i or not self.exists(f"/v1/assistants/{i['assistant_id']}"):
            i["assistant_id"] = self.make("POST", "/v1/assistants", json={"model": "echo", "name": "fuzz"})[
                "id"
            ]
        for key in ("file_id", "batch_file_id"):
            if key not in i or not self.exists(f"/v1/files/{i[key]}"):
                upload = {"file": ("fuzz.txt", b"Assistd fuzzing seed: the quick brown fox.\n")}
                i[key] = self.make("POST", "/v1/files", files=upload, data={"purpose": "assistants"})["id"]
                if key == "batch_file_id":
                    i.pop("batch_id", None)
        vs = f"/v1/vector_stores/{i.get('vector_store_id')}"
        if "vector_store_id" not in i or not self.exists(vs):
            i["vector_store_id"] = self.make("POST", "/v1/vector_stores", json={"name": "fuzz"})["id"]
            vs = f"/v1/vector_stores/{i['vector_store_id']}"
            i.pop("batch_id", None)
        if not self.exists(f"{vs}/files/{i['file_id']}"):
            self.make("POST", f"{vs}/files", json={"file_id": i["file_id"]})
        if "batch_id" not in i or not self.exists(f"{vs}/file_batches/{i['batch_id']}"):
            i["batch_id"] = self.make("POST", f"{vs}/file_batches", json={"file_ids": [i["batch_file_id"]]})[
                "id"
            ]
        self.wait(vs, lambda o: o["file_counts"]["in_progress"] == 0)
        if "container_id" not in i or not self.exists(f"/v1/containers/{i['container_id']}"):
            i["container_id"] = self.make("POST", "/v1/containers", json={"name": "fuzz"})["id"]
        self.heal_thread()

    def heal_thread(self) -> None:
        i = self.ids
        if "thread_id" not in i or not self.exists(f"/v1/threads/{i['thread_id']}"):
            i["thread_id"] = self.make("POST", "/v1/threads")["id"]
            i.pop("message_id", None), i.pop("run_id", None)
        thread = f"/v1/threads/{i['thread_id']}"
        if "message_id" not in i or not self.exists(f"{thread}/messages/{i['message_id']}"):
            body = {"role": "user", "content": "Hello from the fuzzer."}
            i["message_id"] = self.make("POST", f"{thread}/messages", json=body)["id"]
        if "run_id" not in i:
            run = self.make("POST", f"{thread}/runs", json={"assistant_id": i["assistant_id"]})
            i["run_id"] = run["id"]
            self.wait(f"{thread}/runs/{run['id']}", lambda o: o["status"] in TERMINAL)
            steps = self.make("GET", f"{thread}/runs/{run['id']}/steps")["data"]
            i["step_id"] = steps[0]["id"] if steps else "step_none"
