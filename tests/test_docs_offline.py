"""/docs and /redoc render with the network cut: their assets come from the app, not a CDN."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from api_factories import make_app
from browser_factories import chromium_page
from fastapi.testclient import TestClient


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_doc_pages_reference_only_the_apps_own_assets(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    with TestClient(app) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
            assets = [
                part.split('"')[0] for part in html.split('src="')[1:] + html.split('href="')[1:]
            ]
            local = [a for a in assets if a.startswith("/")]
            assert local and all(not urlparse(a).netloc for a in assets if a.endswith(".js"))
            for asset in local:
                assert client.get(asset).status_code == 200, asset


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    import uvicorn

    app, _ = make_app(tmp_path)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.browser
def test_swagger_ui_renders_every_operation_without_network(base_url: str) -> None:
    # Anything but this machine is a firewall's "no".
    offline = chromium_page(allow=lambda url: urlparse(url).hostname == "127.0.0.1")
    with offline as (page, refused):
        page.goto(f"{base_url}/docs", wait_until="load")
        page.wait_for_selector(".opblock", timeout=20_000)
        shown = page.eval_on_selector_all(".opblock", "els => els.length")
        openapi = page.request.get(f"{base_url}/openapi.json").json()
    operations = sum(len(methods) for methods in openapi["paths"].values())
    assert shown == operations
    assert refused == []
