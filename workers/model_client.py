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
        self._endpoints: dict[str, ModelEndpoint] = {}  # by model name: a round asks several times

    def endpoint(self, model: str) -> ModelEndpoint:
        """The endpoint serving `model`, with its base URL and key filled in."""
        found = self._endpoints.get(model)
        if found is not None:
            return found
        s = self._settings
        ep = s.model_endpoints.get(model) or s.model_endpoints.get("*") or ModelEndpoint()
        found = ep.model_copy(update={
            "base_url": ep.base_url or s.openai_base_url or "https://api.openai.com/v1",
            "api_key": ep.api_key or s.openai_api_key or "none",
        })
        if len(self._endpoints) >= 1024:  # model names are the callers' text: keep the memo bounded
            self._endpoints.clear()
        self._endpoints[model] = found
        return found

    def client(self, model: str) -> AsyncOpenAI:
        ep = self.endpoint(model)
        assert ep.base_url is not None and ep.api_key is not None
        client = self._clients.get(ep.base_url + ep.api_key)
        if client is None:
            # Hundreds of runs wait on one endpoint at once: keep that many connections alive
            # (the SDK keeps 100, and reconnecting costs more than the request).
            limits = httpx2.Limits(max_connections=2000, max_keepalive_connections=self._settings.worker_concurrency)
            http = DefaultAioHttpClient if self._settings.model_http == "aiohttp" else DefaultAsyncHttpx2Client
            client = AsyncOpenAI(
                base_url=ep.base_url,
                api_key=ep.api_key,
                max_retries=0,  # workers/chat.py retries, and knows which failures to leave alone
                timeout=self._settings.model_timeout_seconds,
                http_client=http(limits=limits),
            )
            self._clients[ep.base_url + ep.api_key] = client
        return client

    def context_window(self, model: str) -> int:
        return self.endpoint(model).context_window or self._settings.context_window

    def answer_limit(self, model: str, asked: int | None) -> int:
        """The answer's token limit: the run's, else the endpoint's default, else the room the
        prompt leaves for the answer (never unlimited: an unbounded answer ties up the server)."""
        window = self.context_window(model)
        if asked:  # a limit past the window would leave the prompt no room at all
            return min(asked, window * 3 // 4)
        limit = self.endpoint(model).max_output_tokens or min(self._settings.completion_reserve_tokens, window // 4)
        return min(limit, window * 3 // 4)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
