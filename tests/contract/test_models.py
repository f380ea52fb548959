"""GET /v1/models through the SDK: the configured model names, and the default endpoint's own list
(the scripted model lists "echo")."""

from __future__ import annotations

import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from tests.procs import SMALL_MODEL


def test_models_list_configured_names_and_the_endpoints_own(client: OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {"echo", SMALL_MODEL} <= set(models)
    assert models["echo"].owned_by == "scripted"  # the endpoint's entry, as it listed it
    for m in models.values():
        assert m.object == "model" and isinstance(m.created, int) and m.owned_by


def test_retrieve_a_model(client: OpenAI) -> None:
    echo = client.models.retrieve("echo")
    assert (echo.id, echo.object, echo.owned_by) == ("echo", "model", "scripted")
    assert client.models.retrieve(SMALL_MODEL).id == SMALL_MODEL


def test_an_unknown_model_is_a_404_and_models_cannot_be_deleted(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "no-such-model" in caught.value.message
    # as OpenAI answers a method a URL does not take (api/errors.py)
    with pytest.raises(BadRequestError, match="Invalid method for URL"):
        client.models.delete("echo")
