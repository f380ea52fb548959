"""Which OpenAI-compatible endpoint serves which model, and one client per endpoint."""

from __future__ import annotations

import httpx2
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpx2Client

from core.config import ModelEndpoint, Settings


class ModelClients:
    """`OPENAI_BASE_URL`/`OPENAI_API_KEY` serve every model not mapped in `model_endpoints`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, AsyncOpenAI] = {}

    def endpoint(self, model: str) -> ModelEndpoint:
        mapped = self._settings.model_endpoints.get(model)
        if mapped is not None:
            return mapped
        return ModelEndpoint(
            base_url=self._settings.openai_base_url or "https://api.openai.com/v1",
            api_key=self._settings.openai_api_key or "none",
        )

    def client(self, model: str) -> AsyncOpenAI:
        ep = self.endpoint(model)
        client = self._clients.get(ep.base_url + ep.api_key)
        if client is None:
            # Hundreds of runs wait on one endpoint at once: keep that many connections alive
            # (the SDK keeps 100, and reconnecting costs more than the request).
            limits = httpx2.Limits(max_connections=2000, max_keepalive_connections=self._settings.worker_concurrency)
            http = DefaultAioHttpClient if self._settings.model_http == "aiohttp" else DefaultAsyncHttpx2Client
            client = AsyncOpenAI(
                base_url=ep.base_url,
                api_key=ep.api_key,
                max_retries=self._settings.model_max_retries,
                timeout=self._settings.model_timeout_seconds,
                http_client=http(limits=limits),
            )
            self._clients[ep.base_url + ep.api_key] = client
        return client

    def context_window(self, model: str) -> int:
        return self.endpoint(model).context_window or self._settings.context_window

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
