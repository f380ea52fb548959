"""The models GET /v1/models lists: the names ASSISTD_MODEL_ENDPOINTS maps, and whatever the
default endpoint (the "*" entry, else OPENAI_BASE_URL) says it serves.

This is the API process's one call to a model endpoint, and a metadata call only: runs are still
the workers'. Its answer is kept for a minute, and an endpoint that is down or slow leaves the
list with the configured names (a client listing models must not wait on, or fail with, it).
"""

from __future__ import annotations

import asyncio
import logging
import time

from openai import AsyncOpenAI
from openai.types import Model

from core.config import Settings

log = logging.getLogger("assistd.api")

CACHE_SECONDS = 60.0
TIMEOUT_SECONDS = 3.0
MOST_LISTED = 1000  # of the endpoint's answer: it is another server's, its size not ours to trust
OWNER = "assistd"  # the owner of a name only the configuration knows


class ModelCatalog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # a configured name has no creation date of its own: the server's start stands in, so
        # every listing shows the same figure
        self._since = int(time.time())
        self._listed: dict[str, Model] = {}
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()  # one request asks the endpoint; the others wait for its answer

    def configured(self) -> dict[str, Model]:
        return {
            name: Model(id=name, object="model", created=self._since, owned_by=OWNER)
            for name in self._settings.model_endpoints
            if name != "*"  # the catch-all's options, not a model
        }

    async def models(self) -> dict[str, Model]:
        """Every known model by id; the endpoint's own entry wins over a configured name."""
        return self.configured() | await self._upstream()

    async def _upstream(self) -> dict[str, Model]:
        if time.monotonic() < self._fresh_until:
            return self._listed
        async with self._lock:
            if time.monotonic() >= self._fresh_until:
                self._listed = await self._ask()
                # a failure is kept as long as an answer: a dead endpoint costs one timeout a minute
                self._fresh_until = time.monotonic() + CACHE_SECONDS
        return self._listed

    async def _ask(self) -> dict[str, Model]:
        s = self._settings
        catch_all = s.model_endpoints.get("*")
        base_url = (catch_all and catch_all.base_url) or s.openai_base_url
        api_key = (catch_all and catch_all.api_key) or s.openai_api_key
        if not base_url and not api_key:  # no default endpoint configured: nothing to ask
            return {}
        try:
            async with AsyncOpenAI(
                base_url=base_url, api_key=api_key or "none", timeout=TIMEOUT_SECONDS, max_retries=0
            ) as client:
                page = await client.models.list()
                return {
                    str(m.id): Model(
                        id=str(m.id),
                        object="model",
                        created=int(getattr(m, "created", None) or self._since),
                        owned_by=str(getattr(m, "owned_by", None) or OWNER),
                    )
                    for m in page.data[:MOST_LISTED]
                    if isinstance(getattr(m, "id", None), str)
                }
        except Exception as exc:  # any failure (down, refused, a malformed answer): configured only
            log.info("listing the default endpoint's models failed: %s", type(exc).__name__)
            return {}
