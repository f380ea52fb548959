"""Query and path parameters, checked before any handler reads them (api/params.py)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from api.errors import BadRequest
from api.params import checked_params


def check(query: bytes = b"", **path_params: str) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/things",
        "query_string": query,
        "headers": [],
        "path_params": path_params,
    }
    asyncio.run(checked_params(Request(scope)))


def refused(query: bytes = b"", **path_params: str) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        check(query, **path_params)
    assert caught.value.status == 400 and caught.value.code == "invalid_value"
    return caught.value


def test_ordinary_parameters_pass() -> None:
    check(b"limit=5&order=asc&after=asst_1&include[]=a&include[]=b", thread_id="thread_1")


def test_a_parameter_given_twice_is_refused() -> None:
    err = refused(b"limit=5&order=asc&limit=6")
    assert err.param == "limit" and "more than once" in err.message


def test_a_nul_in_a_value_is_refused_with_its_name() -> None:
    assert refused(b"after=asst_%00x").param == "after"
    assert refused(thread_id="thread_\x00").param == "thread_id"


def test_a_nul_in_a_name_is_refused() -> None:
    err = refused(b"li%00mit=5")
    assert err.param is None and err.message.startswith("Invalid parameter name")
