"""Models: list and retrieve (api/model_catalog.py). Deleting a model is not supported: the
route is absent, so DELETE answers OpenAI's "Invalid method for URL" 400."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import Project
from api.errors import NotFound
from api.model_catalog import ModelCatalog
from api.params import Checked
from api.responses import wire

router = APIRouter(prefix="/models", tags=["models"], dependencies=[Checked])


def catalog(request: Request) -> ModelCatalog:
    """The app's catalog, made on first use (its cache lives as long as the app)."""
    state = request.app.state
    found: ModelCatalog | None = getattr(state, "model_catalog", None)
    if found is None:
        found = state.model_catalog = ModelCatalog(state.settings)
    return found


@router.get("")
async def list_models(request: Request, project: Project) -> Response:
    """List the models this server knows."""
    models = await catalog(request).models()
    data = ",".join(m.model_dump_json() for m in models.values())
    return Response(f'{{"object":"list","data":[{data}]}}', media_type="application/json")


# `:path`: model names may hold a slash (org/model), which the SDK sends as %2F
@router.get("/{model:path}")
async def retrieve_model(request: Request, model: str, project: Project) -> Response:
    """Retrieve a model."""
    found = (await catalog(request).models()).get(model)
    if found is None:
        raise NotFound(
            f"The model '{model}' does not exist or you do not have access to it.", code="model_not_found"
        )
    return wire(found)
