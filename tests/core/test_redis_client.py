"""The Redis URL forms (core/redis_client.py): redis-py's own, and redis+sentinel://."""

from __future__ import annotations

import pytest

from core.redis_client import SentinelUrl, parse_sentinel


def test_sentinel_url() -> None:
    got = parse_sentinel("redis+sentinel://:s3cret@a:26379,b:26380,c/mymaster/2?sentinel_password=x")
    assert got == SentinelUrl(
        sentinels=[("a", 26379), ("b", 26380), ("c", 26379)],
        service="mymaster",
        db=2,
        password="s3cret",
        sentinel_password="x",
    )
    assert got.primary_options() == {"db": 2, "username": None, "password": "s3cret"}
    assert got.sentinel_options()["password"] == "x"


def test_sentinel_url_defaults() -> None:
    got = parse_sentinel("redis+sentinel://user:pw@[::1]:26379/cache")
    assert (got.sentinels, got.service, got.db, got.username, got.password) == (
        [("::1", 26379)],
        "cache",
        0,
        "user",
        "pw",
    )
    assert "password" not in got.sentinel_options()


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "redis+sentinel://a:26379", "redis+sentinel:///mymaster"]
)
def test_not_a_sentinel_url(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel(url)
