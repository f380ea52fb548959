"""Prometheus metrics and health endpoints of the API and the workers, scraped live."""

from __future__ import annotations

import re

import httpx
from openai import OpenAI

from tests.conftest import Server


def scrape(url: str) -> str:
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return resp.text


def one_run(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="echo")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "count me"}]}
    )
    assert run.status == "completed"
    client.beta.threads.retrieve(run.thread_id)


def test_api_metrics_use_route_templates(server: Server, client: OpenAI) -> None:
    one_run(client)
    text = scrape(f"{server.url}/metrics")
    assert 'assistd_http_requests_total{method="POST",route="/v1/threads/runs",status="200"}' in text
    assert 'route="/v1/threads/{thread_id}"' in text
    assert not re.search(r"thread_[A-Za-z0-9]{24}", text)  # templates, never ids
    assert (
        "assistd_http_request_duration_seconds_bucket" in text and "assistd_http_requests_in_flight" in text
    )
    assert re.search(r'assistd_runs\{status="queued"\} \d', text)
    for path in ("/healthz", "/readyz"):
        assert httpx.get(f"{server.url}{path}").status_code == 200


def test_worker_metrics(server: Server, client: OpenAI) -> None:
    one_run(client)
    if server.mode == "embedded":  # one process: the API's /metrics shows the worker's too
        texts = [scrape(f"{server.url}/metrics")]
    else:
        texts = [scrape(f"http://127.0.0.1:{port}/metrics") for port in server.worker_ports]
        for port in server.worker_ports:
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").json() == {"status": "ready"}
    text = "\n".join(texts)
    for name in (
        "assistd_runs_started_total",
        "assistd_runs_finished_total",
        "assistd_run_queue_wait_seconds",
        "assistd_model_request_duration_seconds",
        "assistd_tokens_total",
        "assistd_project_tokens_total",
        "assistd_worker_runs_in_flight",
        "assistd_dramatiq_messages_total",
        "assistd_dramatiq_queue_backlog",
    ):
        assert name in text, name
    assert re.search(r'assistd_runs_finished_total\{model="echo",status="completed"\} [1-9]', text)


def test_callers_model_names_never_label_series(server: Server, client: OpenAI) -> None:
    """A model name is the caller's text: only the operator's names (ASSISTD_METRICS_MODELS and
    the keys of ASSISTD_MODEL_ENDPOINTS) label series, any other counts as "other"."""
    name = "echo-" + "x" * 250  # the longest a model name may be
    assistant = client.beta.assistants.create(model="echo")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, model=name, thread={"messages": [{"role": "user", "content": "label me"}]}
    )
    assert run.status == "completed" and run.model == name
    if server.mode == "embedded":
        text = scrape(f"{server.url}/metrics")
    else:
        text = "\n".join(scrape(f"http://127.0.0.1:{port}/metrics") for port in server.worker_ports)
    assert "x" * 100 not in text
    assert re.search(r'assistd_runs_finished_total\{model="other",status="completed"\} [1-9]', text)
