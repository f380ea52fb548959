"""/docs and /redoc load everything they need from this server (no CDN: nothing else may be reachable)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.main import create_app
from core.config import Settings


def test_docs_pages_and_their_assets_come_from_this_server(tmp_path: object) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/a.db"), enqueue=lambda _: None)
    with TestClient(app) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page)
            assert html.status_code == 200
            urls = re.findall(r'(?:src|href)="([^"]+)"', html.text) + re.findall(r"url: '([^']+)'", html.text)
            assert urls, html.text
            for url in urls:
                assert url.startswith("/"), f"{page} loads {url} from elsewhere"
                if url != "/openapi.json":
                    got = client.get(url)
                    assert got.status_code == 200 and len(got.content) > 1000, url
        assert client.get("/openapi.json").json()["info"]["title"] == "Assistd"
