"""The playground: static ES modules under /playground that talk to /v1 with the user's own key."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ASSETS = Path(__file__).resolve().parent.parent / "playground"

# Everything comes from this origin; API content is only ever inserted as text, and this keeps it so.
POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds the content security policy and no-sniff to every playground response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
            await send(message)

        await self.app(scope, receive, sending)


def mount(app: FastAPI) -> None:
    """Serve the playground at /playground/ (gzipped, with a strict content security policy)."""

    @app.get("/playground", include_in_schema=False)
    async def playground() -> RedirectResponse:
        return RedirectResponse("/playground/")  # relative module imports need the trailing slash

    @app.get("/playground/server.json", include_in_schema=False)
    async def server() -> dict[str, bool]:
        # whether the user must give a key: a server without ASSISTD_API_KEYS accepts any, and
        # asking the API with a made-up one would answer a 401 wherever keys are needed
        return {"key_required": bool(app.state.api_keys)}

    static = StaticFiles(directory=ASSETS, html=True)
    app.mount("/playground", SecurityHeaders(GZipMiddleware(static, minimum_size=500)), name="playground")
