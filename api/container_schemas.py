"""Request bodies and list parameters of the container endpoints, validated as OpenAI validates them."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar, Union

from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError, field_validator

from api.body import Body, Id, Name
from api.errors import BadRequest, validation_error
from api.pagination import ListParams
from core.containers import MEMORY_LIMITS, MemoryLimit

MAX_FILES = 100  # ours: file_ids of one container (each file's bytes are copied while the request waits)
NO_NETWORK = 'the sandbox has no network: only {"type": "disabled"} is supported'


class ExpiresAfter(Body):
    anchor: Literal["last_active_at"]
    minutes: Annotated[int, Field(ge=1, le=10_080)]  # up to a week


class NetworkDisabled(Body):
    type: Literal["disabled"]


class NetworkAllowlist(Body):
    type: Literal["allowlist"]
    allowed_domains: list[str]
    domain_secrets: list[dict[str, Any]] | None = None


class ContainerCreate(Body):
    name: Name
    expires_after: ExpiresAfter | None = None
    file_ids: Annotated[list[Id], Field(max_length=MAX_FILES)] | None = None
    memory_limit: MemoryLimit = "1g"
    network_policy: (
        Annotated[Union[NetworkDisabled, NetworkAllowlist], Field(discriminator="type")] | None
    ) = None
    skills: list[Any] | None = None

    @field_validator("network_policy")
    @classmethod
    def _no_network(cls, v: NetworkDisabled | NetworkAllowlist | None) -> NetworkDisabled | None:
        if isinstance(v, NetworkAllowlist):
            raise ValueError(NO_NETWORK)
        return v

    @field_validator("skills")
    @classmethod
    def _no_skills(cls, v: list[Any] | None) -> list[Any] | None:
        if v:
            raise ValueError("skills are not supported by this server")
        return v


class ContainerFileCreate(Body):
    """The JSON form of POST /containers/{id}/files (the multipart form carries `file`)."""

    file_id: Id


class ContainerListParams(ListParams):
    name: str | None = None


B = TypeVar("B", bound=Body)


def parse_json(model: type[B], raw: bytes) -> B:
    """A JSON body the route reads itself (it takes multipart too, so FastAPI cannot parse it),
    answered as FastAPI's own parsing would be: the same 400s in the same words."""
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):  # RecursionError: JSON nested past the parser's stack
        data = None
    if data is None:
        invalid = [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": {}}]
        raise validation_error(RequestValidationError(invalid, body=raw))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise validation_error(RequestValidationError(errors, body=data)) from None


def check_memory(limit: str, ceiling: str, param: str) -> None:
    """A container's memory_limit is at most the operator's ceiling (ASSISTD_CONTAINER_MAX_MEMORY)."""
    if MEMORY_LIMITS[limit] > MEMORY_LIMITS[ceiling]:
        raise BadRequest(
            f"Invalid 'memory_limit': '{limit}' is above this server's ceiling of '{ceiling}'.",
            param=param,
            code="invalid_value",
        )
