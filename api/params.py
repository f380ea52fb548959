"""Query and path parameters, checked once for every /v1 route before a handler reads them."""

from __future__ import annotations

from collections import Counter

from fastapi import Depends, Request

from api.body import scan
from api.errors import BadRequest


async def checked_params(request: Request) -> None:
    """A parameter given twice is a 400 (which one was meant?); so is text that no column or
    lookup can hold (PostgreSQL refuses a NUL even in a WHERE clause)."""
    given = [*request.query_params.multi_items(), *request.path_params.items()]
    names = Counter(k for k, _ in request.query_params.multi_items())  # once: a count per key is quadratic
    for key, value in given:
        if (problem := scan(key)) is not None:
            raise BadRequest(f"Invalid parameter name: {problem[1]}.", code="invalid_value")
        if (problem := scan(value)) is not None:
            raise BadRequest(f"Invalid '{key}': {problem[1]}.", param=key, code="invalid_value")
        if names[key] > 1 and not key.endswith("[]"):  # `include[]` is a list by design
            raise BadRequest(
                f"Invalid '{key}': the parameter was given more than once.", param=key, code="invalid_value"
            )


Checked = Depends(checked_params)
