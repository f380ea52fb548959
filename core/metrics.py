"""Prometheus exposition shared by the API and the workers."""

from __future__ import annotations

import hmac

from prometheus_client import CollectorRegistry, generate_latest, multiprocess


def render(multiprocess_dir: str | None) -> bytes:
    """The Prometheus text format; summed over this host's processes in multiprocess mode."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
        return generate_latest(registry)
    return generate_latest()


def allowed(authorization: str | None, token: str | None) -> bool:
    """Whether a scrape may read /metrics: always without a token, else with `Bearer <token>`
    (the scheme case-insensitive, as for API keys), compared in constant time."""
    if not token:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
