"""GET /dashboard, /dashboard/interactive, /v1/forecast, /v1/nrr: what `nrr forecast` wrote.

The files are served as written, except that the two pages' link to each other is pointed
at the other page's route.

Every route needs a reader key by default: the report names the accounts most at risk and
their ARR. Browsers cannot send the X-API-Key header, so a deployment that puts /dashboard
behind its own login (or the local demo) sets NRR_DASHBOARD_PUBLIC=true to open that page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from serving.routes import _api_key, check_reader, require_reader
from serving.schemas import ApiError

REPORT_FILE = "report.html"
INTERACTIVE_FILE = "interactive.html"  # serving.report_interactive: plotly charts, offline
FORECAST_FILE = "forecast.json"
NRR_FILE = "nrr.json"
COMMAND = "nrr forecast --data DIR --out REPORT_DIR"

router = APIRouter()


def _report_dir(request: Request) -> Path:
    settings = getattr(request.app.state, "settings", None)
    report_dir = getattr(settings, "report_dir", None)
    if report_dir is None:
        raise HTTPException(
            status_code=503,
            detail=(
                "no forecast report configured: run `" + COMMAND + "` and start the API "
                "with NRR_REPORT_DIR=REPORT_DIR"
            ),
        )
    return Path(report_dir)


def _file(request: Request, name: str) -> Path:
    path = _report_dir(request) / name
    if not path.is_file():
        raise HTTPException(
            status_code=404,
            detail=f"{path} does not exist: run `{COMMAND}` to write the forecast report",
        )
    return path


def _json(request: Request, name: str) -> Any:
    path = _file(request, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HTTPException(
            status_code=503, detail=f"{path} is not valid JSON ({exc.msg}); rerun `{COMMAND}`"
        ) from exc


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        401: "missing or wrong X-API-Key",
        404: "the report folder has no such file: run `" + COMMAND + "`",
        503: "no report folder configured (NRR_REPORT_DIR) or the file is not valid JSON",
    }
    return {c: {"model": ApiError, "description": texts[c]} for c in codes}


_FORECAST_EXAMPLE = {
    "as_of": "2026-10-01T00:00:00",
    "quarter": "2026Q4",
    "draws": 10000,
    "seed": 0,
    "scope": "New-logo ARR is out of scope: the forecast covers the existing customer base",
    "summary": [
        {"group": "All", "metric": "nrr", "mean": 1.065, "p10": 1.031, "p50": 1.065, "p90": 1.1}
    ],
    "fan": [
        {"quarter": 1, "quarter_label": "2026Q4", "group": "All", "metric": "nrr", "p50": 1.065}
    ],
    "top_at_risk": [{"account_id": "ACC000409", "arr": 1173.94, "arr_at_risk": 756.3}],
}
_NRR_EXAMPLE = {
    "data_end": "2026-10-01T00:00:00",
    "quarterly": [
        {
            "period_start": "2026-04-01T00:00:00",
            "starting_arr": 1.0e7,
            "expansion_arr": 9.1e5,
            "contraction_arr": 1.2e5,
            "churned_arr": 2.4e5,
            "nrr": 1.055,
            "grr": 0.964,
        }
    ],
    "best_cohorts": [{"cohort": "2024Q1", "nrr": 1.12}],
}


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    tags=["forecast"],
    responses={
        200: {"content": {"text/html": {"example": "<!doctype html><html>...</html>"}}},
        **_errors(401, 404, 503),
    },
)
def dashboard(
    request: Request, key: Annotated[str | None, Depends(_api_key)] = None
) -> HTMLResponse:
    """The leadership forecast report (self-contained HTML); reader key unless public."""
    # /dashboard -> dashboard/interactive (relative: still right behind a path prefix)
    return _page(request, key, REPORT_FILE, link=(INTERACTIVE_FILE, "dashboard/interactive"))


@router.get(
    "/dashboard/interactive",
    response_class=HTMLResponse,
    tags=["forecast"],
    responses={
        200: {"content": {"text/html": {"example": "<!doctype html><html>...</html>"}}},
        **_errors(401, 404, 503),
    },
)
def dashboard_interactive(
    request: Request, key: Annotated[str | None, Depends(_api_key)] = None
) -> HTMLResponse:
    """The report's charts to hover, with a segment filter (offline HTML); as /dashboard."""
    # /dashboard/interactive -> ../dashboard
    return _page(request, key, INTERACTIVE_FILE, link=(REPORT_FILE, "../dashboard"))


def _page(request: Request, key: str | None, name: str, *, link: tuple[str, str]) -> HTMLResponse:
    """A page of the report folder; reader key unless the dashboard is public.

    The two pages link to each other by file name, which is right when opened from the
    folder; served here, the link is pointed at the other page's route instead.
    """
    if not getattr(request.app.state.settings, "dashboard_public", False):
        check_reader(request, key)
    text = _file(request, name).read_text(encoding="utf-8")
    old, new = link
    return HTMLResponse(text.replace(f"href='{old}'", f"href='{new}'", 1))


@router.get(
    "/v1/forecast",
    tags=["forecast"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _FORECAST_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def forecast(request: Request) -> Any:
    """Next-quarter and fan NRR forecast: P10/P50/P90 pooled and by segment, top accounts."""
    return _json(request, FORECAST_FILE)


@router.get(
    "/v1/nrr",
    tags=["forecast"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _NRR_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def nrr(request: Request) -> Any:
    """NRR history: monthly and quarterly bridges, splits, cohort heatmap, best/worst cohorts."""
    return _json(request, NRR_FILE)
