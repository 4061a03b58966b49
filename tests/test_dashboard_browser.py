"""/dashboard opened in headless Debian chromium: every chart renders, no console errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from browser_factories import chromium_page

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serving.forecast_cli import write_report
    from serving.forecasting import build_nrr_tables
    from serving.report_html import ReportInputs
    from tests.test_forecasting import forecast_for, synthetic_company
    from tests.test_report import tiny_backtest

    subs, accounts = synthetic_company(0)
    nrr = build_nrr_tables(subs, accounts, data_end=pd.Timestamp("2025-07-01"))
    inputs = ReportInputs(nrr=nrr, forecast=forecast_for(draws=500), backtest=tiny_backtest())
    out = tmp_path_factory.mktemp("report") / "report"
    write_report(inputs, out)
    return out


@pytest.fixture(scope="module")
def base_url(report_dir: Path) -> Iterator[str]:
    import uvicorn
    from fastapi import FastAPI

    from serving.dashboard import router

    app = FastAPI()
    app.include_router(router)
    app.state.settings = SimpleNamespace(
        report_dir=report_dir, auth_enabled=False, dashboard_public=False
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 10 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_dashboard_renders_every_chart_without_console_errors(base_url: str) -> None:
    errors: list[str] = []
    with chromium_page(viewport={"width": 1200, "height": 900}) as (page, _):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        response = page.goto(f"{base_url}/dashboard", wait_until="load")
        assert response is not None and response.status == 200
        sections = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
        images = page.eval_on_selector_all(
            "img.chart",
            "els => els.map(e => ({alt: e.alt, ok: e.complete && e.naturalWidth > 0}))",
        )
        readings = page.eval_on_selector_all("p.reading", "els => els.map(e => e.innerText)")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert {"fan", "bridge", "trend", "cohorts", "health", "backtest"} <= set(sections)
    assert len(images) == len(sections)
    assert all(img["ok"] for img in images), [i["alt"] for i in images if not i["ok"]]
    assert all(text.strip() for text in readings) and len(readings) == len(sections)
    assert errors == []
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
