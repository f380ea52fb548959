"""Fuzzing the API from its own OpenAPI schema, against real servers in both modes.

schemathesis turns GET /openapi.json into a Hypothesis strategy per operation; each operation gets
schema-valid requests, schema-invalid ones, and valid ones spoilt by hand (tests/fuzz_mutations.py).
Path parameters often name seeded objects (tests/fuzz_state.py) so requests get past the 404s.
For every response: no 5xx; a 4xx is OpenAI's error envelope and changes nothing, neither the
project's row counts nor the object the request addressed.

Every failure is collected rather than raised inside Hypothesis, so one run lists all of them (and
nothing is shrunk, which keeps the time bounded). Generation is derandomized: the same requests
every run, apart from the seeded ids. `-s` shows the request counts.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case as AnyCase
from schemathesis.schemas import APIOperation

from tests.fuzz_mutations import Mutation, kinds, mutations
from tests.fuzz_state import Rows, Seeds, comparable
from tests.procs import KEY_A, Server

# examples per operation, by kind; sized for ~90 s per mode on a quiet 2-core machine
EXAMPLES = {"positive": 10, "negative": 10, "mutated": 3}  # "mutated": per mutation kind
AUTH = {"Authorization": f"Bearer {KEY_A}", "OpenAI-Beta": "assistants=v2"}
TIMEOUT = 30
EXAMPLES_SHOWN = 2  # requests shown per distinct failure
ENVELOPE_TYPES = {"message": (str,), "type": (str,), "param": (str, type(None)), "code": (str, type(None))}
# path parameters use the seeds' ids mostly; "mixed" names a seed for some of them only
ID_CHOICES = ["seeds", "seeds", "seeds", "mixed", "generated"]
Operation = APIOperation[Any, Any, Any, Any]
Case = AnyCase[Operation]
SENT: dict[str, dict[str, int]] = {}  # mode -> {"fuzz": n, "probes": n}, printed at the end


@dataclass
class Failure:
    label: str
    what: str
    examples: list[str] = field(default_factory=list)  # request and response, the first few
    times: int = 0


@dataclass
class Fuzzer:
    server: Server
    session: requests.Session
    seeds: Seeds
    rows: Rows
    raw: dict[str, Any]
    sent: int = 0
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)  # how deep requests got, for -s
    waited: float = 0.0  # seconds spent waiting for fuzz responses

    def hints(self) -> dict[str, Any]:
        """Values that get a body past the first existence check, for fields that carry ids."""
        i = self.seeds.ids
        return {
            "assistant_id": i["assistant_id"],
            "model": "echo",
            "purpose": "assistants",
            "file_id": i["file_id"],
            "file_ids": [i["file_id"]],
            "vector_store_ids": [i["vector_store_id"]],
            "run_id": i["run_id"],
            "role": "user",
        }

    def fail(self, label: str, what: str, request: str, resp: requests.Response | None) -> None:
        failure = self.failures.setdefault((label, what), Failure(label, what))
        failure.times += 1
        if len(failure.examples) < EXAMPLES_SHOWN:
            got = f"{resp.status_code} {short(resp.text)}" if resp is not None else "none"
            failure.examples.append(f"request: {request}\n      response: {got}")

    def report(self) -> str:
        return "\n".join(
            f"- {f.label}: {f.what} (x{f.times})" + "".join(f"\n    {e}" for e in f.examples)
            for f in self.failures.values()
        )


@pytest.fixture(scope="module")
def fuzzer(server: Server) -> Iterator[Fuzzer]:
    http = httpx.Client(base_url=server.url, headers=AUTH, timeout=TIMEOUT)
    seeds = Seeds(http)
    seeds.heal()
    rows = Rows(server.env["ASSISTD_DATABASE_URL"])
    raw = http.get("/openapi.json").json()
    fz = Fuzzer(server, requests.Session(), seeds, rows, raw)
    yield fz
    SENT[server.mode] = {"fuzz": fz.sent, "probes": seeds.requests}
    print(f"\n[fuzz] {server.mode}: {fz.sent} fuzz requests, {seeds.requests} seeding/probe requests")
    rows.close()
    http.close()
    fz.session.close()


@pytest.fixture(scope="module", autouse=True)
def _request_count() -> Iterator[None]:
    yield
    total = sum(n for sent in SENT.values() for n in sent.values())
    print(f"\n[fuzz] requests sent, by mode: {SENT}; {total} in all")


def operations(fz: Fuzzer) -> list[Operation]:
    schema = schemathesis.openapi.from_url(f"{fz.server.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]


def spec(fz: Fuzzer, op: Operation) -> dict[str, Any]:
    return fz.raw["paths"][op.path][op.method.lower()]  # type: ignore[no-any-return]


def properties(fz: Fuzzer, op: Operation) -> dict[str, Any]:
    """Top-level properties of the operation's JSON body schema ({} for none)."""
    content = spec(fz, op).get("requestBody", {}).get("content", {})
    node = content.get("application/json", {}).get("schema", {})
    while "$ref" in node or "anyOf" in node:  # an optional body is anyOf [its schema, null]
        if "anyOf" in node:
            node = next((n for n in node["anyOf"] if n.get("type") != "null"), {})
        else:
            node = fz.raw["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node.get("properties", {})  # type: ignore[no-any-return]


def parameters(fz: Fuzzer, op: Operation, where: str) -> list[str]:
    return [p["name"] for p in spec(fz, op).get("parameters", []) if p["in"] == where]


def has_json_body(fz: Fuzzer, op: Operation) -> bool:
    return "application/json" in spec(fz, op).get("requestBody", {}).get("content", {})


def object_url(fz: Fuzzer, op: Operation, values: dict[str, str]) -> str | None:
    """The object a request addresses: its path up to the last path parameter."""
    cut = re.match(r"(.*\})", op.path)
    if cut is None:
        return None
    return cut.group(1).format(**{k: quote(str(v), safe="") for k, v in values.items()})


def use_seeds(fz: Fuzzer, case: Case, data: st.DataObject) -> None:
    names = list(case.path_parameters or {})
    # a DELETE has nothing to vary but its ids: deleting a seed (then making it again) now and then is enough
    choices = (
        ["seeds", "generated", "generated", "generated"] if case.method.upper() == "DELETE" else ID_CHOICES
    )
    choice = data.draw(st.sampled_from(choices), label="ids") if names else "generated"
    for name in names:
        seeded = name in fz.seeds.ids and (
            choice == "seeds" or choice == "mixed" and data.draw(st.booleans())
        )
        if seeded:
            case.path_parameters[name] = fz.seeds.ids[name]
    if isinstance(case.body, dict) and data.draw(st.booleans(), label="hints"):
        hints = fz.hints()
        case.body.update({k: hints[k] for k in case.body if k in hints})


def mutate(kw: dict[str, Any], case: Case, m: Mutation) -> None:
    """Apply a mutation to the request arguments schemathesis made for `case`."""
    if m.body is not None:  # the spoilt body replaces the whole of it, a multipart one too
        kw.pop("json", None)
        kw.pop("files", None)
        kw["data"] = m.body
        kw["headers"]["Content-Type"] = m.content_type
    if m.query is not None:
        name = m.where.split(" ", 1)[1]
        params = {k: v for k, v in (kw.get("params") or {}).items() if k != name}
        kw["params"] = params
        kw["url"] += ("&" if "?" in kw["url"] else "?") + "&".join(m.query)
    if m.path is not None:
        values = {k: quote(str(v), safe="") for k, v in (case.path_parameters or {}).items()} | m.path
        base = kw["url"].split("/v1/", 1)[0]
        kw["url"] = base + case.path.format(**values)


def short(text: str) -> str:
    return text if len(text) < 400 else f"{text[:300]}...[{len(text)} chars]"


def describe(kw: dict[str, Any]) -> str:
    url = requests.Request(kw["method"], kw["url"], params=kw.get("params")).prepare().url or kw["url"]
    body = kw.get("data", kw.get("json", kw.get("files")))
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    elif body is not None and not isinstance(body, str):
        body = json.dumps(body, default=repr)
    return f"{kw['method']} /v1/{short(url.split('/v1/', 1)[-1])} body={short(body) if body is not None else '-'}"


def envelope_problem(resp: requests.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return "error body is not JSON"
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return "error body is not {'error': {...}}"
    for key, types in ENVELOPE_TYPES.items():
        if key not in body["error"] or not isinstance(body["error"][key], types):
            return f"error.{key} missing or of the wrong type"
    return None


def send(fz: Fuzzer, kw: dict[str, Any]) -> requests.Response | Exception:
    fz.sent += 1
    started = time.monotonic()
    try:
        try:
            return fz.session.request(**kw, timeout=TIMEOUT)
        except requests.ConnectionError:
            # After an unhandled exception (a 5xx, reported already) uvicorn resets the kept-alive
            # connection without saying so; a client's next request on it fails. Retry on a new one.
            fz.session.close()
            return fz.session.request(**kw, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return exc
    finally:
        fz.waited += time.monotonic() - started


def exercise(fz: Fuzzer, op: Operation, case: Case, data: st.DataObject, kind: str) -> None:
    use_seeds(fz, case, data)
    kw = case.as_transport_kwargs(base_url=fz.server.url, headers=dict(AUTH))
    m: Mutation | None = None
    if kind != "positive" and kind != "negative":  # the name of a mutation
        body = case.body if isinstance(case.body, dict) else {}
        m = data.draw(
            mutations(
                kind, body, properties(fz, op), parameters(fz, op, "query"), parameters(fz, op, "path")
            ),
            label="mutation",
        )
        mutate(kw, case, m)
    request = describe(kw) + (f"  [{m.kind} at {m.where}]" if m is not None else "")
    label = f"{op.label} [{m.kind}]" if m is not None else op.label
    obj = object_url(fz, op, case.path_parameters or {}) if m is None or m.path is None else None
    before_rows = fz.rows.counts()
    before_obj = None
    if obj is not None and op.method.upper() != "GET":
        probe = fz.seeds.call("GET", obj)
        before_obj = comparable(probe.json()) if probe.status_code == 200 else None
    resp = send(fz, kw)
    if isinstance(resp, Exception):
        fz.fail(label, f"no response ({type(resp).__name__})", request, None)
        return
    fz.statuses[resp.status_code] += 1
    fz.by_operation.setdefault(op.label, Counter())[resp.status_code] += 1
    check(fz, label, request, resp, before_rows, obj, before_obj)
    if op.method.upper() == "DELETE" and resp.status_code < 300:
        fz.seeds.heal()


def check(
    fz: Fuzzer,
    label: str,
    request: str,
    resp: requests.Response,
    before_rows: dict[str, int],
    obj: str | None,
    before_obj: dict[str, Any] | None,
) -> None:
    if resp.status_code < 400:
        return
    if resp.status_code >= 500:
        fz.fail(label, f"{resp.status_code} server error", request, resp)
    else:
        problem = envelope_problem(resp)
        if problem:
            fz.fail(label, f"{resp.status_code}: {problem}", request, resp)
    # a 5xx is a failure already; rows it left behind may explain 5xx of later requests
    after_rows = fz.rows.counts()
    changed = {k: after_rows[k] - before_rows[k] for k in after_rows if after_rows[k] != before_rows[k]}
    if changed:
        fz.fail(label, f"{resp.status_code} changed row counts {changed}", request, resp)
    if resp.status_code >= 500:
        return
    if obj is not None and before_obj is not None:
        after = fz.seeds.call("GET", obj)
        after_obj = comparable(after.json()) if after.status_code == 200 else None
        if after_obj != before_obj:
            diff = sorted(
                k
                for k in set(before_obj) | set(after_obj or {})
                if (after_obj or {}).get(k) != before_obj.get(k)
            )
            fz.fail(
                label, f"{resp.status_code} changed the addressed object ({diff or 'deleted'})", request, resp
            )


def explore(fz: Fuzzer, op: Operation, sort: str) -> None:
    """Hypothesis over one operation: schema-valid ("positive") or schema-invalid ("negative")
    cases, or valid ones spoilt by hand ("mutated": each applicable kind of mutation in turn)."""
    strategy = op.as_strategy(
        generation_mode=GenerationMode.NEGATIVE if sort == "negative" else GenerationMode.POSITIVE
    )
    has_query, has_path = bool(parameters(fz, op, "query")), bool(parameters(fz, op, "path"))
    for kind in kinds(has_json_body(fz, op), has_query, has_path) if sort == "mutated" else [sort]:

        @settings(
            max_examples=EXAMPLES[sort],
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @given(case=strategy, data=st.data())
        def one(case: Case, data: st.DataObject) -> None:
            exercise(fz, op, case, data, kind)  # `one` runs before the loop moves on to the next kind

        one()


def can_negate(fz: Fuzzer, op: Operation) -> bool:
    # string path parameters have no schema-invalid value: only a body or a query can be made wrong
    return "requestBody" in spec(fz, op) or bool(parameters(fz, op, "query"))


def can_mutate(fz: Fuzzer, op: Operation) -> bool:
    return has_json_body(fz, op) or bool(parameters(fz, op, "query") or parameters(fz, op, "path"))


def run_all(fz: Fuzzer, sorts: list[str]) -> None:
    started, waited = time.monotonic(), fz.waited
    fz.statuses.clear()
    fz.by_operation.clear()
    for op in operations(fz):
        for sort in sorts:
            if sort == "negative" and not can_negate(fz, op) or sort == "mutated" and not can_mutate(fz, op):
                continue
            try:
                explore(fz, op, sort)
            except Unsatisfiable:  # schemathesis found no way to break this operation's schema
                pass
    print(
        f"\n[fuzz] {fz.server.mode} {'+'.join(sorts)}: {sum(fz.statuses.values())} requests in "
        f"{time.monotonic() - started:.0f} s ({fz.waited - waited:.0f} s waiting for responses), "
        f"statuses {dict(sorted(fz.statuses.items()))}"
    )
    for label, statuses in fz.by_operation.items():
        print(f"[fuzz]   {label}: {dict(sorted(statuses.items()))}")


def test_schema_requests(fuzzer: Fuzzer) -> None:
    """Schema-valid and schema-invalid requests for every operation."""
    run_all(fuzzer, ["positive", "negative"])
    assert not fuzzer.failures, f"{len(fuzzer.failures)} distinct failures:\n{fuzzer.report()}"


def test_mutated_requests(fuzzer: Fuzzer) -> None:
    """Valid requests with one spot spoilt: lone surrogates, NaN, huge numbers, repeated parameters..."""
    fuzzer.failures.clear()
    run_all(fuzzer, ["mutated"])
    assert not fuzzer.failures, f"{len(fuzzer.failures)} distinct failures:\n{fuzzer.report()}"
