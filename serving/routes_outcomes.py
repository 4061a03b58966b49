"""GET /v1/churn-timing, /v1/winback, /v1/targets: outcome files `nrr forecast` wrote.

`nrr forecast` writes churn_timing.json, winback.json and targets.json beside forecast.json
(`outcome_files` below is the one definition of their content); these routes serve them
from NRR_REPORT_DIR like /v1/forecast, behind a reader key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request

from serving.dashboard import _errors, _json
from serving.routes import require_reader

if TYPE_CHECKING:  # the writer's types; `nrr serve` need not import pandas models at start
    import pandas as pd

    from models.outcomes.tables import OutcomeTables

TIMING_FILE = "churn_timing.json"
WINBACK_FILE = "winback.json"
TARGETS_FILE = "targets.json"
TARGETS_NOTE = (
    "P(NRR >= target) from the forecast's Monte Carlo (same inputs as the fan), to within "
    "0.1 percentage point. Next quarter: the quarter's NRR against the quarter target; "
    "year: cumulative NRR over four quarters against the annual target."
)

router = APIRouter()


def outcome_files(
    outcomes: OutcomeTables | None, targets: pd.DataFrame | None, *, as_of: pd.Timestamp
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
    responses=_errors(401, 404, 503),
)
def churn_timing(request: Request) -> Any:
    """Share of churned ARR and logos by tenure band at churn: pooled, by segment, by ICP fit."""
    return _json(request, TIMING_FILE)


@router.get(
    "/v1/winback",
    tags=["outcomes"],
    dependencies=[Depends(require_reader)],
    responses=_errors(401, 404, 503),
)
def winback(request: Request) -> Any:
    """Accounts churned in the last 12 months ranked by return probability, with the play."""
    return _json(request, WINBACK_FILE)


@router.get(
    "/v1/targets",
    tags=["outcomes"],
    dependencies=[Depends(require_reader)],
    responses=_errors(401, 404, 503),
)
def targets(request: Request) -> Any:
    """NRR target and owner per segment, and the chance of reaching it (quarter, year)."""
    return _json(request, TARGETS_FILE)
