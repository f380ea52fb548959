"""deploy/ checked offline: compose references, Kubernetes schemas, the Helm chart (linted and
rendered by Helm's own engine, which helm-python-sdk ships as a library: no helm binary, no
cluster), and dashboard/alert queries that name only metrics the code really exports (scraped
live)."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import httpx
import kubernetes_validate
import pytest
import yaml
from openai import OpenAI

from core.config import Settings
from tests.conftest import ROOT, Server

DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "assistd"
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


def check_manifests(docs: list[dict[str, Any]]) -> None:
    """Kubernetes 1.30's schemas, strictly; resources and probes on every container; settings that
    Settings reads."""
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
    check_manifests(docs)


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


# every optional part of the chart switched on
CHART_ALL_ON = {
    "worker": {"keda": {"enabled": True}},
    "api": {"autoscaling": {"enabled": True}},
    "serviceMonitor": {"enabled": True},
}


def helm_template(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`helm template assistd deploy/helm/assistd`, through Helm's own engine (helm-python-sdk)."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="assistd", namespace="assistd", revision=1, is_install=True)
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.mark.parametrize("values", [None, CHART_ALL_ON], ids=["defaults", "all-on"])
def test_helm_chart_lints(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version="v1.30.0")
    assert report["total_charts_linted"] == 1 and not report["errors"], report
    # severity 1 is information (such as "icon is recommended"); 2 warnings, 3 errors
    assert not [m for m in report["messages"] if m["severity"] != 1], report["messages"]


@pytest.mark.parametrize("values", [None, CHART_ALL_ON], ids=["defaults", "all-on"])
def test_helm_chart_renders_valid_manifests(values: dict[str, Any] | None) -> None:
    docs = helm_template(values)
    check_manifests(docs)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Job", "ConfigMap", "Secret", "PodDisruptionBudget"} <= kinds
    if values:
        assert {"ScaledObject", "ServiceMonitor", "HorizontalPodAutoscaler"} <= kinds
        scaled = {d["kind"]: d for d in docs if d["metadata"]["name"].endswith("-worker")}
        assert "replicas" not in scaled["Deployment"]["spec"], "KEDA owns the workers' replica count"


def test_helm_chart_mirrors_kustomize() -> None:
    """With its default values (and KEDA and the ServiceMonitor on, as deploy/k8s has them), the
    chart runs what the kustomize manifests run: the same commands, ports, probes, resources,
    settings and scaling."""

    def by_kind_and_role(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        # assistd-api -> api; the chart's Job carries the release's revision (assistd-migrate-1)
        return {(d["kind"], re.sub(r"-\d+$", "", d["metadata"]["name"]).split("-")[-1]): d for d in docs}

    def pod(doc: dict[str, Any]) -> dict[str, Any]:
        spec = dict(doc["spec"]["template"]["spec"])
        spec["containers"] = [
            {k: v for k, v in c.items() if k not in ("image", "imagePullPolicy", "envFrom")}
            for c in spec["containers"]
        ]
        return spec

    ours = by_kind_and_role(
        helm_template({"worker": {"keda": {"enabled": True}}, "serviceMonitor": {"enabled": True}})
    )
    theirs = by_kind_and_role([d for d in k8s_documents() if d["kind"] != "Namespace"])
    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))
    for key, doc in theirs.items():
        kind = key[0]
        if kind in ("Deployment", "Job"):
            assert pod(ours[key]) == pod(doc), key
            assert ours[key]["spec"].get("backoffLimit") == doc["spec"].get("backoffLimit"), key
        elif kind == "ConfigMap":
            assert ours[key]["data"] == doc["data"]
        elif kind == "Secret":
            assert set(ours[key]["stringData"]) == set(doc["stringData"])
        elif kind in ("Service", "PodDisruptionBudget", "ScaledObject", "ServiceMonitor"):
            # the selectors and targets name the release; a Service's type defaults to ClusterIP
            strip = ("selector", "scaleTargetRef")
            defaults = {"type": "ClusterIP"} if kind == "Service" else {}
            mine, kustomized = (
                defaults | {k: v for k, v in d["spec"].items() if k not in strip} for d in (ours[key], doc)
            )
            assert mine == kustomized, key
