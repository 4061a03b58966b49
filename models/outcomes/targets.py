"""NRR targets per segment (blueprint section 4): the chance the Monte Carlo gives each one.

The forecast's Monte Carlo (`models.revenue.forecast.simulate_fan`, the same inputs as the
report's fan) is run once with a fine grid of quantiles; the probability that NRR reaches a
target is read off that distribution: P(NRR >= target) to within 0.1 percentage point
(999 quantile levels). Next quarter compares the quarter's NRR with the quarter target;
four quarters compares the cumulative NRR of the year with the annual target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.outcomes.config import POOLED_SEGMENT, TargetsConfig
from models.revenue.forecast import POOLED, RateShock, quantile_name, simulate_fan
from models.revenue.forecast_book import Renewal, simulation_inputs
from models.rules.config import segment_key

LEVELS: tuple[float, ...] = tuple(np.round(np.arange(1, 1000) / 1000, 3).tolist())
QUARTERS = 4
TARGET_COLUMNS: tuple[str, ...] = (
    "segment",
    "owner",
    "accounts",
    "starting_arr",
    "quarter_target",
    "p_quarter",
    "nrr_p50_quarter",
    "annual_target",
    "p_year",
    "nrr_p50_year",
    "status",
)
NO_ACCOUNTS = "no accounts of this segment in the book"
NO_TARGET = "no target set"


def probability_at_least(values: np.ndarray, target: float) -> float:
    """P(X >= target) from X's quantiles at LEVELS (sorted values), to within 1/1000.

    k levels have a quantile below the target, so F(target-) lies between k/1000 and
    (k+1)/1000; the midpoint is returned, kept inside (0.0005, 0.9995).
    """
    below = int(np.searchsorted(np.sort(values), target, side="left"))
    return float(1.0 - (below + 0.5) / (len(LEVELS) + 1))


def _quantiles(fan: pd.DataFrame, quarter: int, group: str) -> np.ndarray | None:
    rows = fan[(fan["quarter"] == quarter) & (fan["group"] == group) & (fan["metric"] == "nrr")]
    if rows.empty:
        return None
    return rows[[quantile_name(q) for q in LEVELS]].to_numpy(dtype=float)[0]


def target_probabilities(
    accounts: pd.DataFrame,
    *,
    targets: TargetsConfig,
    renewal: Renewal | None,
    shock: RateShock | None,
    draws: int,
    seed: int,
    workers: int = 1,
) -> pd.DataFrame:
    """One row per target (and per book segment without one): probabilities of reaching it.

    `accounts` is the forecast's per-account expectations (`account_expectations`), the
    same frame the report's fan simulates; `renewal` and `shock` as in `build_forecast`.
    """
    inputs: dict[str, Any] = simulation_inputs(accounts)
    if renewal is not None:
        inputs.update(renewal.probabilities(accounts, QUARTERS))
    fan = simulate_fan(
        **inputs,
        quarters=QUARTERS,
        draws=draws,
        seed=seed,
        quantiles=LEVELS,
        workers=workers,
        shock=shock,
    ).summary
    segments = {segment_key(str(s)): str(s) for s in accounts["segment"].astype(str).unique()}
    sizes = accounts.groupby(accounts["segment"].astype(str))["arr"].agg(["size", "sum"])
    rows = []
    for target in targets.targets:
        key = segment_key(target.segment)
        pooled = key == segment_key(POOLED_SEGMENT)
        group = POOLED if pooled else segments.get(key)
        row = _target_row(fan, target.segment, group, sizes, pooled=pooled, accounts=accounts)
        row.update(owner=target.owner, quarter_target=target.next_quarter, annual_target=target.nrr)
        if group is not None:
            row["p_quarter"] = _chance(fan, 1, group, target.next_quarter)
            row["p_year"] = _chance(fan, QUARTERS, group, target.nrr)
            row["status"] = status_of(
                row["p_year"], on_track=targets.on_track, at_risk=targets.at_risk
            )
        rows.append(row)
    targeted = {segment_key(t.segment) for t in targets.targets}
    for key, name in sorted(segments.items()):
        if key not in targeted:
            rows.append(_target_row(fan, name, name, sizes, pooled=False, accounts=accounts))
    return pd.DataFrame(rows).reindex(columns=list(TARGET_COLUMNS))


def _chance(fan: pd.DataFrame, quarter: int, group: str, target: float) -> float:
    values = _quantiles(fan, quarter, group)
    return float("nan") if values is None else probability_at_least(values, target)


def _target_row(
    fan: pd.DataFrame,
    segment: str,
    group: str | None,
    sizes: pd.DataFrame,
    *,
    pooled: bool,
    accounts: pd.DataFrame,
) -> dict[str, Any]:
    row: dict[str, Any] = {"segment": segment, "owner": None, "status": NO_TARGET}
    if group is None:
        return {**row, "accounts": 0, "starting_arr": 0.0, "status": NO_ACCOUNTS}
    if pooled:
        row.update(accounts=len(accounts), starting_arr=float(accounts["arr"].sum()))
    else:
        row.update(
            accounts=int(sizes.loc[group, "size"]), starting_arr=float(sizes.loc[group, "sum"])
        )
    for quarter, name in ((1, "nrr_p50_quarter"), (QUARTERS, "nrr_p50_year")):
        values = _quantiles(fan, quarter, group)
        row[name] = float("nan") if values is None else float(np.interp(0.5, LEVELS, values))
    return row


def status_of(p_year: float, *, on_track: float, at_risk: float) -> str:
    """'on track', 'at risk' or 'off track' from the chance of reaching the annual target."""
    if not np.isfinite(p_year):
        return ""
    if p_year >= on_track:
        return "on track"
    return "at risk" if p_year >= at_risk else "off track"
