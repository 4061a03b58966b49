"""GET /v1/churn-timing, /v1/winback, /v1/targets: outcome files `nrr forecast` wrote;
POST / GET /v1/interventions: plays recorded into the workspace for `nrr interventions`.

`nrr forecast` writes churn_timing.json, winback.json and targets.json beside forecast.json
(`outcome_files` below is the one definition of their content); these routes serve them
from NRR_REPORT_DIR like /v1/forecast, behind a reader key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict

from serving.dashboard import _errors, _json
from serving.routes import require_admin, require_reader
from serving.schemas import ApiError

if TYPE_CHECKING:  # the writer's types; `nrr serve` need not import pandas models at start
    import pandas as pd

    from models.outcomes.interventions import InterventionReport
    from models.outcomes.tables import OutcomeTables

TIMING_FILE = "churn_timing.json"
WINBACK_FILE = "winback.json"
TARGETS_FILE = "targets.json"
INTERVENTIONS_FILE = "intervention_outcomes.json"
INTERVENTIONS_NOTE = (
    "Per risk level (health band at the play's month start) and play: share of at-risk "
    "accounts saved (still a customer and Healthy or Thriving 90 days later) and retained, "
    "against the nearest same-band accounts by churn probability without a play; effects "
    "with 95% bootstrap intervals."
)
TARGETS_NOTE = (
    "P(NRR >= target) from the forecast's Monte Carlo (same inputs as the fan), to within "
    "0.1 percentage point. Next quarter: the quarter's NRR against the quarter target; "
    "year: cumulative NRR over four quarters against the annual target."
)

router = APIRouter()

_TIMING_EXAMPLE = {
    "data_end": "2026-10-01T00:00:00",
    "first_churn": "2023-10-02T14:03:19",
    "icp_fit_present": True,
    "cohorts": [
        {
            "split": "segment",
            "group": "SMB",
            "band": "adoption stall",
            "tenure_days": "31-90",
            "churned_logos": 39,
            "churned_arr": 99241.95,
            "logo_share": 0.082,
            "arr_share": 0.079,
        }
    ],
}
_WINBACK_EXAMPLE = {
    "as_of": "2026-10-01T00:00:00",
    "backtest": {"rows": 1418, "returns": 129, "auc": 0.51, "auc_low": 0.47, "auc_high": 0.56},
    "accounts": [
        {
            "rank": 1,
            "account_id": "ACC000533",
            "churn_at": "2026-03-24T09:13:48",
            "churned_arr": 5042.81,
            "return_probability": 0.185,
            "reason": "champion left",
            "approach": "reach new stakeholders",
            "window_start": "2026-04-23T09:13:48",
            "window_end": "2026-05-23T09:13:48",
            "timing": "window passed",
        }
    ],
}
_TARGETS_EXAMPLE = {
    "as_of": "2026-10-01T00:00:00",
    "targets": [
        {
            "segment": "Enterprise",
            "owner": "Head of Enterprise CS",
            "quarter_target": 1.036,
            "p_quarter": 0.77,
            "annual_target": 1.15,
            "p_year": 0.92,
            "status": "on track",
        }
    ],
}
_OUTCOMES_EXAMPLE = {
    "left_out": {"outcome_after_data": 36, "not_at_risk": 1072, "no_comparison": 9},
    "results": [
        {
            "risk_level": "All at-risk",
            "play": "executive escalation",
            "treated": 139,
            "saved_rate": 0.79,
            "control_saved_rate": 0.35,
            "saved_effect": 0.445,
            "saved_low": 0.369,
            "saved_high": 0.524,
        }
    ],
}
_PLAY_EXAMPLE: JsonDict = {
    "account_id": "ACC000409",
    "play": "executive escalation",
    "owner": "Ana Ruiz",
    "started_at": "2026-09-14T09:00:00+00:00",
    "notes": "renewal at risk, exec call booked",
    "recorded_at": "2026-09-14T09:05:12+00:00",
}


def outcome_files(
    outcomes: OutcomeTables | None,
    targets: pd.DataFrame | None,
    *,
    as_of: pd.Timestamp,
    interventions: InterventionReport | None = None,
) -> dict[str, dict[str, Any]]:
    """File name -> JSON content of every outcome file of a report."""
    from serving.forecasting import records

    files: dict[str, dict[str, Any]] = {}
    if outcomes is not None:
        first = outcomes.first_churn
        files[TIMING_FILE] = {
            "data_end": outcomes.data_end.isoformat(),
            "first_churn": None if first is None else first.isoformat(),
            "icp_fit_present": outcomes.icp_fit_present,
            "cohorts": records(outcomes.timing),
        }
        test = outcomes.winback_backtest
        files[WINBACK_FILE] = {
            "as_of": outcomes.data_end.isoformat(),
            "backtest": None if test is None else test.to_dict(),
            "accounts": records(outcomes.winback),
        }
    if interventions is not None:
        files[INTERVENTIONS_FILE] = {
            "note": INTERVENTIONS_NOTE,
            "left_out": {
                "outcome_after_data": interventions.pending,
                "not_at_risk": interventions.not_at_risk,
                "no_arr_at_start": interventions.unscored,
                "no_comparison": interventions.unmatched,
            },
            "results": records(interventions.results),
        }
    if targets is not None:
        files[TARGETS_FILE] = {
            "as_of": as_of.isoformat(),
            "note": TARGETS_NOTE,
            "targets": records(targets),
        }
    return files


@router.get(
    "/v1/churn-timing",
    tags=["outcomes"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _TIMING_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def churn_timing(request: Request) -> Any:
    """Share of churned ARR and logos by tenure band at churn: pooled, by segment, by ICP fit."""
    return _json(request, TIMING_FILE)


@router.get(
    "/v1/winback",
    tags=["outcomes"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _WINBACK_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def winback(request: Request) -> Any:
    """Accounts churned in the last 12 months ranked by return probability, with the play."""
    return _json(request, WINBACK_FILE)


@router.get(
    "/v1/interventions/outcomes",
    tags=["outcomes"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _OUTCOMES_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def intervention_outcomes(request: Request) -> Any:
    """Saved and retained rates of at-risk accounts with a play vs matched ones, per play."""
    return _json(request, INTERVENTIONS_FILE)


@router.get(
    "/v1/targets",
    tags=["outcomes"],
    dependencies=[Depends(require_reader)],
    responses={
        200: {"content": {"application/json": {"example": _TARGETS_EXAMPLE}}},
        **_errors(401, 404, 503),
    },
)
def targets(request: Request) -> Any:
    """NRR target and owner per segment, and the chance of reaching it (quarter, year)."""
    return _json(request, TARGETS_FILE)


class InterventionIn(BaseModel):
    """A play started on an account (what `nrr interventions` evaluates 90 days later)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "ACC000409",
                    "play": "executive escalation",
                    "owner": "Ana Ruiz",
                    "started_at": "2026-09-14T09:00:00Z",
                    "notes": "renewal at risk, exec call booked",
                }
            ]
        },
    )

    # at least one non-blank character (in the schema, so clients see the rule)
    account_id: str = Field(min_length=1, max_length=200, pattern=r"\S")
    play: str = Field(min_length=1, max_length=200, pattern=r"\S")
    owner: str | None = Field(None, max_length=200)
    started_at: datetime = Field(description="ISO 8601; naive values are read as UTC")
    notes: str | None = Field(None, max_length=4000)


class InterventionOut(BaseModel):
    """A recorded play: what was posted, started_at in UTC, and when it was recorded."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PLAY_EXAMPLE]})

    account_id: str
    play: str
    owner: str | None
    started_at: str
    notes: str | None
    recorded_at: str


class InterventionList(BaseModel):
    """Every play recorded through POST /v1/interventions, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"interventions": [_PLAY_EXAMPLE]}]})

    interventions: list[dict[str, Any]]


def _started_utc(value: datetime) -> datetime:
    """started_at in UTC, or 409: a play in the future (or out of range) has not started."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. year 1 with a positive offset
        raise HTTPException(status_code=409, detail="started_at is out of range") from None
    # a few minutes of clock skew between the CSM tool and the server are fine
    if utc > datetime.now(UTC) + timedelta(minutes=10):
        raise HTTPException(
            status_code=409,
            detail="started_at lies in the future: record a play once it has started",
        )
    return utc


def _store(request: Request) -> Path:
    return Path(request.app.state.settings.workspace().interventions_path)


@router.post(
    "/v1/interventions",
    response_model=InterventionOut,
    tags=["outcomes"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ApiError, "description": "missing or wrong X-API-Key"},
        403: {"model": ApiError, "description": "a reader key cannot record plays"},
        409: {"model": ApiError, "description": "started_at lies in the future or out of range"},
        503: {"model": ApiError, "description": "the workspace cannot be written"},
    },
)
def record_intervention(body: InterventionIn, request: Request) -> dict[str, Any]:
    """Record a play (admin key); `nrr interventions` in the same workspace evaluates it."""
    from models.outcomes.store import append_play

    record = body.model_dump()
    record["account_id"], record["play"] = body.account_id.strip(), body.play.strip()
    record["started_at"] = _started_utc(body.started_at).isoformat()
    record["recorded_at"] = datetime.now(UTC).isoformat()
    try:
        append_play(_store(request), record)
    except OSError as exc:
        raise HTTPException(
            status_code=503, detail=f"cannot record the play: {exc.strerror or exc}"
        ) from None
    return record


@router.get(
    "/v1/interventions",
    response_model=InterventionList,
    tags=["outcomes"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": ApiError, "description": "missing or wrong X-API-Key"}},
)
def list_interventions(request: Request) -> dict[str, Any]:
    """The plays recorded through POST /v1/interventions, oldest first."""
    from models.outcomes.store import read_plays
    from serving.forecasting import records

    try:
        plays = read_plays(_store(request))
    except OSError as exc:
        raise HTTPException(
            status_code=503, detail=f"cannot read the plays: {exc.strerror or exc}"
        ) from None
    return {"interventions": records(plays)}
