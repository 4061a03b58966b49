"""Renewals: one computation of owner, renewal date, days left, risk and alert tier.

`renewal_status` is the one definition used by `nrr renewals` (through `renewal_calendar`),
by `nrr score` and by the API (scores, worklist and `GET /v1/renewals`):
- owner: `csm_owner` stripped; missing, empty or whitespace-only means unowned.
- renewal date: `renewal_at` of the committed (annual or multi-year) term. Month-to-month
  accounts (none) have no renewal: they can leave at any month end, so they are flagged
  `month_to_month`, have no renewal date, days left or alert, and are listed apart, in the
  monthly-at-risk view (`monthly_at_risk`: high-risk ones, highest churn probability first),
  never as renewals every 30 days.
- days left: whole days from as_of to the renewal date, rounded down (a renewal 30.5 days
  away has 30 days left). A negative value is an overdue renewal: the committed term ended
  and no renewal is recorded, yet the account is still in the active book (inside the grace
  period, or the export missed the renewal). It is the most urgent renewal there is, so it
  is listed first in every renewal window (`overdue`), never dropped.
- high risk: the health band is one of `high_risk_bands` or the churn probability is
  strictly above `churn_probability_high` (rules.yaml: "above"; at the threshold is not).
- alert tier: for a high-risk account renewing in the next max(alert_days) days, the
  smallest of `alert_days` (e.g. 30 of 90/60/30) not below its days left.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from models.rules.config import RenewalSpec, RulesConfig
from models.rules.health import numeric_column

CALENDAR_COLUMNS = (
    "account_id",
    "csm_owner",
    "unowned",
    "renewal_at",
    "month_to_month",
    "days_left",
    "overdue",
    "arr",
    "health_score",
    "health_band",
    "churn_probability",
    "high_risk",
    "alert_days",
)


def account_owner(value: Any) -> str | None:
    """The CSM owning an account, or None when unowned (missing, empty or only whitespace)."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    owner = str(value).strip()
    return owner or None


def high_risk(
    health_band: Iterable[Any], churn_probability: np.ndarray, spec: RenewalSpec
) -> np.ndarray:
    """High risk per row: band in `high_risk_bands` or churn probability above the threshold."""
    bands = set(spec.high_risk_bands)
    p = np.asarray(churn_probability, dtype="float64")
    by_band = np.fromiter((isinstance(b, str) and b in bands for b in health_band), bool, len(p))
    with np.errstate(invalid="ignore"):
        return by_band | (p > spec.churn_probability_high)


def renews_within(days_left: Any, within_days: int) -> Any:
    """Whether a renewal `days_left` whole days away is due within `within_days` days.

    Overdue renewals (days_left < 0) are due in every window; unknown (NaN) in none.
    """
    return days_left <= within_days


def alert_tier(days_left: np.ndarray, risky: np.ndarray, tiers: list[int]) -> np.ndarray:
    """The smallest alert tier not below days_left, for high-risk rows; NaN otherwise."""
    tier = np.full(len(days_left), np.nan)
    for t in sorted(tiers, reverse=True):
        tier = np.where(renews_within(days_left, t), t, tier)
    return np.where(risky, tier, np.nan)


def _timestamps(frame: Any, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[us]")
    column = frame[name]
    if isinstance(column, pd.Series):
        return pd.to_datetime(column).to_numpy(dtype="datetime64[us]")
    # A request's few rows (a `Table` of Timestamp/None): pd.to_datetime costs ~0.1 ms.
    out = np.empty(len(column), dtype="datetime64[us]")
    for i, value in enumerate(column):
        out[i] = np.datetime64("NaT") if pd.isna(value) else pd.Timestamp(value).to_datetime64()
    return out


def _probabilities(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype="float64")


def renewal_status(
    rows: Any,
    *,
    health_band: Iterable[Any],
    churn_probability: Any,
    config: RulesConfig,
) -> dict[str, np.ndarray]:
    """Per row: csm_owner, unowned, renewal_at (NaT when month-to-month), month_to_month,
    days_left (NaN when month-to-month), arr, high_risk, alert_days (NaN when no alert).

    `rows` is a snapshot DataFrame or a `models.table.Table` with account_id and as_of (and
    csm_owner, renewal_at, arr when known); `churn_probability` is None, a sequence with
    None/NaN for unknown, or a Series aligned with the rows.
    """
    spec = config.renewals
    n = len(rows)
    as_of = _timestamps(rows, "as_of")
    renewal_at = _timestamps(rows, "renewal_at")
    monthly = np.isnat(renewal_at)
    with np.errstate(invalid="ignore"):  # NaT (month-to-month) rows become NaN below
        whole_days = (renewal_at - as_of) // np.timedelta64(1, "D")
    days_left = np.where(monthly, np.nan, whole_days.astype("float64"))
    owners = (
        [account_owner(v) for v in rows["csm_owner"]] if "csm_owner" in rows.columns else [None] * n
    )
    owner = np.empty(n, dtype=object)
    owner[:] = owners
    risky = high_risk(health_band, _probabilities(churn_probability, n), spec)
    return {
        "csm_owner": owner,
        "unowned": np.array([o is None for o in owners], dtype=bool),
        "renewal_at": renewal_at,
        "month_to_month": monthly,
        "days_left": days_left,
        "arr": numeric_column(rows, "arr"),
        "high_risk": risky,
        "alert_days": alert_tier(days_left, risky, spec.alert_days),
    }


def _check_inputs(
    snapshots: pd.DataFrame, *, as_of: pd.Timestamp, health: pd.DataFrame, within_days: int
) -> None:
    if within_days < 0:
        raise ValueError(f"within_days must be >= 0, got {within_days}")
    if "account_id" not in snapshots.columns:
        raise ValueError("snapshots lack the account_id column")
    if "as_of" in snapshots.columns and (pd.to_datetime(snapshots["as_of"]) != as_of).any():
        raise ValueError(f"snapshots must all be at as_of {as_of.date()}")
    if missing := {"health_score", "health_band"} - set(health.columns):
        raise ValueError(f"health lacks columns {sorted(missing)} (pass score_health output)")
    if not health.index.equals(snapshots.index):
        raise ValueError("health must be indexed like the snapshots")


def _status_frame(
    snaps: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    health: pd.DataFrame,
    churn_probability: pd.Series | None,
    config: RulesConfig,
) -> pd.DataFrame:
    if "as_of" not in snaps.columns:
        snaps = snaps.assign(as_of=as_of)
    p_churn = (
        np.full(len(snaps), np.nan)
        if churn_probability is None
        else churn_probability.reindex(snaps.index).to_numpy(dtype="float64", na_value=np.nan)
    )
    band = health["health_band"].astype("string")
    status = renewal_status(snaps, health_band=band, churn_probability=p_churn, config=config)
    return pd.DataFrame(
        {
            "account_id": snaps["account_id"].astype("string").to_numpy(),
            "csm_owner": pd.array(status["csm_owner"], dtype="string"),
            "unowned": status["unowned"],
            "renewal_at": status["renewal_at"],
            "month_to_month": status["month_to_month"],
            "days_left": pd.array(status["days_left"], dtype="float64").astype("Int64"),
            "overdue": status["days_left"] < 0,
            "arr": status["arr"],
            "health_score": numeric_column(health, "health_score"),
            "health_band": band.to_numpy(),
            "churn_probability": p_churn,
            "high_risk": status["high_risk"],
            "alert_days": pd.array(status["alert_days"], dtype="float64").astype("Int64"),
        }
    )


def renewal_calendar(
    snapshots_at_as_of: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    within_days: int,
    health: pd.DataFrame,
    churn_probability: pd.Series | None,
    config: RulesConfig,
) -> pd.DataFrame:
    """Committed terms renewing within `within_days` of as_of, overdue ones first, then
    soonest, with risk and alert tier (month-to-month accounts are in `monthly_at_risk`)."""
    snaps = snapshots_at_as_of
    _check_inputs(snaps, as_of=as_of, health=health, within_days=within_days)
    frame = _status_frame(
        snaps, as_of=as_of, health=health, churn_probability=churn_probability, config=config
    )
    days = frame["days_left"]
    keep = (~frame["month_to_month"]) & renews_within(days, within_days).fillna(False)
    out = frame[keep.to_numpy(dtype=bool)]
    out = out.sort_values(["days_left", "arr"], ascending=[True, False], kind="stable")
    return out.reset_index(drop=True)


def monthly_at_risk(
    snapshots_at_as_of: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    health: pd.DataFrame,
    churn_probability: pd.Series | None,
    config: RulesConfig,
) -> pd.DataFrame:
    """Month-to-month accounts at high risk (band or churn probability, as for renewals),
    highest churn probability first, then lowest health, then largest ARR.

    They can leave at any month end, so they have no renewal date: this view replaces
    listing them as renewals every 30 days.
    """
    snaps = snapshots_at_as_of
    _check_inputs(snaps, as_of=as_of, health=health, within_days=0)
    frame = _status_frame(
        snaps, as_of=as_of, health=health, churn_probability=churn_probability, config=config
    )
    out = frame[frame["month_to_month"] & frame["high_risk"]]
    out = out.sort_values(
        ["churn_probability", "health_score", "arr"],
        ascending=[False, True, False],
        kind="stable",
        na_position="last",
    )
    return out.reset_index(drop=True)
