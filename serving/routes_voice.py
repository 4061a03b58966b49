"""GET /v1/themes and /v1/roadmap: the voice-of-the-customer and roadmap files of the report.

`nrr forecast` writes themes.json (and roadmap.json when given --snapshots) beside
forecast.json; `nrr themes` / `nrr roadmap --out REPORT_DIR` write the same files. These
routes serve them from NRR_REPORT_DIR like /v1/forecast, behind a reader key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from serving.dashboard import _errors, _json
from serving.routes import require_reader

# the names serving.voice_report writes (not imported: it pulls in the report's charts)
THEMES_FILE = "themes.json"
ROADMAP_FILE = "roadmap.json"

router = APIRouter()

_THEMES_EXAMPLE = {
    "data_end": "2026-10-01T00:00:00",
    "window_days": 90,
    "texts": 61234,
    "correlation_rows": 14500,
    "themes_tried": {"7": 0.05, "8": 0.09, "9": 0.16},
    "themes": [
        {
            "name": "sso login / login sessions / two-factor codes",
            "mentions": 226,
            "accounts": 123,
            "arr_affected": 2523665.0,
            "trend": "stable",
            "segment_most_affected": "Enterprise",
            "sentiment": -0.50,
            "churn_ratio": 1.45,
            "churn_ratio_low": 1.19,
            "churn_ratio_high": 1.79,
            "churn_reading": "more",
            "expand_ratio": 0.60,
            "expand_reading": "less",
            "quotes": ["We have a problem with SSO login and the SAML certificate."],
        }
    ],
}
_ROADMAP_EXAMPLE = {
    "as_of": "2026-10-01T00:00:00",
    "accounts": 1200,
    "book_arr": 1.9e7,
    "churn_drivers": [
        {"signal": "sentiment", "label": "Ticket sentiment", "share": 0.21, "contract_fact": False}
    ],
    "expansion_blockers": [
        {"signal": "seat_utilisation", "label": "Seat use", "share": 0.3, "contract_fact": False}
    ],
    "metric_audit": [
        {"metric": "workspaces", "churn_auc": 0.51, "churn_auc_low": 0.48, "vanity": True}
    ],
    "audit_rows": 14500,
    "note": "",
}


@router.get(
    "/v1/themes",
    tags=["voice"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _THEMES_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def themes(request: Request) -> Any:
    """Themes in ticket texts and NPS comments: mentions, ARR affected, trend, segment,
    quotes, sentiment, and the churn / expansion mention-rate ratio with its interval."""
    return _json(request, THEMES_FILE)


@router.get(
    "/v1/roadmap",
    tags=["voice"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _ROADMAP_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def roadmap(request: Request) -> Any:
    """The book's ARR-weighted churn drivers and expansion blockers, and the metric audit
    (univariate AUC with interval; vanity = no association with churn or expansion)."""
    return _json(request, ROADMAP_FILE)
