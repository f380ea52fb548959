"""The model catalog without the test servers (api/model_catalog.py): names that hold a slash, the
"*" entry (options, not a model) and a default endpoint that cannot be reached."""

from __future__ import annotations

import time

from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai.types import Model

from api import errors
from api.routes import models
from core.config import Settings

UNREACHABLE = "http://127.0.0.1:1/v1"  # nothing listens on port 1: refused at once


def app_with(endpoints: dict[str, dict[str, str]]) -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(model_endpoints=endpoints)
    app.state.api_keys = {}  # one default project, any key
    errors.install(app)
    app.include_router(models.router, prefix="/v1")
    return app


def test_configured_names_when_the_default_endpoint_is_down() -> None:
    app = app_with({"*": {"base_url": UNREACHABLE}, "org/model-7b": {}, "small": {}})
    http = TestClient(app, headers={"Authorization": "Bearer k"})
    started = time.monotonic()
    listed = http.get("/v1/models").json()
    assert time.monotonic() - started < 2.5
    assert listed["object"] == "list"
    assert sorted(Model.model_validate(m).id for m in listed["data"]) == ["org/model-7b", "small"]
    # the SDK sends a slash in a model name as %2F
    got = http.get("/v1/models/org%2Fmodel-7b")
    assert got.status_code == 200 and Model.model_validate(got.json()).id == "org/model-7b"
    missing = http.get("/v1/models/*")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
