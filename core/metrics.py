"""Prometheus exposition shared by the API and the workers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest, multiprocess


def render(multiprocess_dir: str | None) -> bytes:
    """The Prometheus text format; summed over this host's processes in multiprocess mode."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
