"""deploy/ checked offline: compose references, Kubernetes schemas, and dashboard/alert queries
that name only metrics the code really exports (scraped live)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from openai import OpenAI

from core.config import Settings
from tests.conftest import ROOT, Server

DEPLOY = ROOT / "deploy"
CUSTOM_KINDS = {"ScaledObject": "keda.sh/v1alpha1", "ServiceMonitor": "monitoring.coreos.com/v1"}


def known_env() -> set[str]:
    """Every environment variable Settings reads."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= set(getattr(alias, "choices", []) or ([alias] if isinstance(alias, str) else []))
        names.add(f"ASSISTD_{name.upper()}")
    return names


def test_compose_references_real_services_files_and_settings() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    assert {"api", "worker", "migrate", "redis", "postgres", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for dependency in depends if isinstance(depends, list) else depends.keys():
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            elif source.startswith("/"):  # the one host path: the engine the workers' sandboxes run on
                assert (name, source) == ("worker", "/var/run/docker.sock"), (
                    f"{name} mounts host path {source}"
                )
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        if service.get("image", "").startswith("assistd"):
            assert set(service["environment"]) <= known_env(), name
    assert "pgvector" in services["postgres"]["image"]


def k8s_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / "k8s" / resource).read_text()) if d]
    return docs


def test_kubernetes_manifests_validate() -> None:
    docs = k8s_documents()
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "Job",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "ScaledObject",
        "ServiceMonitor",
    } <= kinds
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:  # CRDs: no schema ships with the validator
            assert doc["apiVersion"] == CUSTOM_KINDS[doc["kind"]] and doc["metadata"]["name"] and doc["spec"]
            continue
        kubernetes_validate.validate(doc, "1.30", strict=True)
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert container["resources"]["requests"] and container["resources"]["limits"]
            if doc["kind"] == "Deployment":
                assert container["readinessProbe"] and container["livenessProbe"]
    for doc in docs:
        if doc["kind"] in ("ConfigMap", "Secret"):
            assert set(doc.get("data", {}) | doc.get("stringData", {})) <= known_env(), doc["metadata"][
                "name"
            ]


def queried_metrics() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "assistd.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return {m for e in exprs for m in re.findall(r"\bassistd_[a-z_]+", e)}


def exported(text: str) -> set[str]:
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    return families | {f + suffix for f in families for suffix in ("_bucket", "_sum", "_count", "_total")}


@pytest.mark.parametrize("server", ["distributed"], indirect=True)
def test_dashboard_and_alerts_name_exported_metrics(server: Server, client: OpenAI) -> None:
    client.beta.threads.create_and_run_poll(
        assistant_id=client.beta.assistants.create(model="echo").id,
        thread={"messages": [{"role": "user", "content": "metrics"}]},
    )
    texts = [httpx.get(f"{server.url}/metrics").text]
    texts += [httpx.get(f"http://127.0.0.1:{p}/metrics").text for p in server.worker_ports]
    names = set().union(*(exported(t) for t in texts))
    missing = {m for m in queried_metrics() if m not in names}
    # the code interpreter's outcomes ride on assistd_tool_calls_total, which is exported
    assert not missing, f"dashboard/alerts query metrics nobody exports: {sorted(missing)}"


def test_dockerfile_installs_the_product() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for package in ("assistd", "core", "api", "workers"):
        assert f"COPY {package} ./{package}" in text
    assert "USER assistd" in text


def test_dockerfile_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    check = re.search(r"^HEALTHCHECK .*?\n(?:\s.*\n)*", text, re.M)
    assert check, "the Dockerfile has no HEALTHCHECK"
    # the default command's liveness endpoint on its port, with what the slim image has (no curl)
    assert "http://127.0.0.1:8000/healthz" in check.group(0) and "urllib" in check.group(0)
    assert "curl" not in check.group(0)
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    # the image's other commands: their own check, or none
    assert "9191/healthz" in " ".join(compose["worker"]["healthcheck"]["test"])
    assert compose["migrate"]["healthcheck"] == {"disable": True}


def test_dockerfile_copies_what_the_build_reads() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    copied = re.search(r"^COPY (.*) \./$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert copied, "the Dockerfile copies no project files"
    for name in [project["readme"], *project["license-files"]]:
        assert name in copied.group(1).split(), f"the image's build needs {name}"
