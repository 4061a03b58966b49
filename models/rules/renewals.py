"""Renewal calendar: renewal dates, days left, ARR at stake, risk and 90/60/30-day alerts.

Month-to-month accounts (no `renewal_at`) can leave at any month end: they are listed
with renewal date as_of + `renewals.month_to_month_days` and flagged `month_to_month`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.rules.config import RulesConfig
from models.rules.health import numeric_column

CALENDAR_COLUMNS = (
    "account_id",
    "csm_owner",
    "unowned",
    "renewal_at",
    "month_to_month",
    "days_left",
    "arr",
    "health_score",
    "health_band",
    "churn_probability",
    "high_risk",
    "alert_days",
)


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


def _renewal_dates(
    snapshots: pd.DataFrame, as_of: pd.Timestamp, config: RulesConfig
) -> tuple[pd.Series, np.ndarray]:
    if "renewal_at" in snapshots.columns:
        dates = pd.to_datetime(snapshots["renewal_at"])
    else:
        dates = pd.Series(pd.NaT, index=snapshots.index, dtype="datetime64[us]")
    monthly = dates.isna().to_numpy()
    fallback = as_of + pd.Timedelta(days=config.renewals.month_to_month_days)
    return dates.where(~monthly, fallback), monthly


def _owners(snapshots: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    if "csm_owner" not in snapshots.columns:
        return pd.Series(pd.NA, index=snapshots.index, dtype="string"), np.ones(
            len(snapshots), bool
        )
    owner = snapshots["csm_owner"].astype("string").str.strip()
    unowned = (owner.isna() | (owner == "")).to_numpy(dtype=bool, na_value=True)
    return owner.where(~unowned, pd.NA), unowned


def renewal_calendar(
    snapshots_at_as_of: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    within_days: int,
    health: pd.DataFrame,
    churn_probability: pd.Series | None,
    config: RulesConfig,
) -> pd.DataFrame:
    """Accounts renewing within `within_days` of as_of, soonest first, with risk and alert tier."""
    snaps = snapshots_at_as_of
    _check_inputs(snaps, as_of=as_of, health=health, within_days=within_days)
    renewal_at, monthly = _renewal_dates(snaps, as_of, config)
    days_left = ((renewal_at - as_of) / pd.Timedelta(days=1)).to_numpy(dtype="float64")
    owner, unowned = _owners(snaps)
    p_churn = (
        np.full(len(snaps), np.nan)
        if churn_probability is None
        else churn_probability.reindex(snaps.index).to_numpy(dtype="float64", na_value=np.nan)
    )
    band = health["health_band"].astype("string")
    spec = config.renewals
    high_risk = band.isin(spec.high_risk_bands).to_numpy(dtype=bool, na_value=False) | (
        p_churn > spec.churn_probability_high
    )
    frame = pd.DataFrame(
        {
            "account_id": snaps["account_id"].astype("string").to_numpy(),
            "csm_owner": owner.to_numpy(),
            "unowned": unowned,
            "renewal_at": renewal_at.to_numpy(),
            "month_to_month": monthly,
            "days_left": days_left,
            "arr": numeric_column(snaps, "arr"),
            "health_score": numeric_column(health, "health_score"),
            "health_band": band.to_numpy(),
            "churn_probability": p_churn,
            "high_risk": high_risk,
            "alert_days": _alert_tier(days_left, high_risk, spec.alert_days),
        }
    )
    # A renewal date already past is stale data, not an upcoming renewal.
    keep = (frame["days_left"] >= 0) & (frame["days_left"] <= within_days)
    out = frame[keep].sort_values(["days_left", "arr"], ascending=[True, False], kind="stable")
    return out.reset_index(drop=True)


def _alert_tier(days_left: np.ndarray, high_risk: np.ndarray, tiers: list[int]) -> pd.Series:
    """The smallest alert tier (e.g. 30 of 90/60/30) not below days_left, for high-risk rows."""
    tier = np.full(len(days_left), np.nan)
    for t in sorted(tiers, reverse=True):
        tier = np.where((days_left >= 0) & (days_left <= t), t, tier)
    tier = np.where(high_risk, tier, np.nan)
    return pd.Series(tier).astype("Int64")
