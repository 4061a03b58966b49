"""Why an account churned, inferred from the contract tables (the export has no reason field).

The seed workflow matches each win-back approach to a churn reason. Without a cancellation
reason in the contract, each churn gets the first reason whose evidence the tables show in
the `reason_window_days` before the churn date (order of experiments/outcomes.yaml):
- champion left: a user flagged is_champion was deactivated;
- budget / pricing: a failed invoice fell due, or ARR was cut (a contraction) in the spell;
- poor onboarding: the churn fell in an onboarding timing band (activation failure or
  adoption stall, `onboarding_bands`);
- missing feature: 3+ feature-gate hits (event_map gate_events);
- competitor switch / unknown: none of the above (always last).
A table or column the export lacks gives no evidence for its reason (never an error).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.source import DataSource
from models.outcomes.config import (
    BUDGET,
    CHAMPION_LEFT,
    MISSING_FEATURE,
    ONBOARDING,
    UNKNOWN_REASON,
    TimingBand,
    WinbackSpec,
)
from models.outcomes.timing import band_of

GATE_HITS = 3  # the expansion trigger's "feature gate hit 3+ times" (docs/DOMAIN.md)


def _evidence(source: DataSource, churns: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Per churn row: champion_left, failed_invoice, gate_hits in the window before churn."""
    name = f"_nrr_churns_{uuid.uuid4().hex[:8]}"
    frame = pd.DataFrame(
        {
            "row": np.arange(len(churns)),
            "account_id": churns["account_id"].astype(str).to_numpy(),
            "churn_at": pd.to_datetime(churns["churn_at"]).to_numpy(),
        }
    )
    win = f"c.churn_at - {int(window_days)} * INTERVAL '1' DAY"
    parts = {"champion_left": "0", "failed_invoice": "0", "gate_hits": "0"}
    if source.has("users", "is_champion") and source.has("users", "deactivated_at"):
        parts["champion_left"] = f"""(SELECT COUNT(*) FROM users u WHERE u.account_id =
            c.account_id AND u.is_champion AND u.deactivated_at >= {win}
            AND u.deactivated_at <= c.churn_at)"""
    if source.has("invoices", "status"):
        parts["failed_invoice"] = f"""(SELECT COUNT(*) FROM invoices i WHERE i.account_id =
            c.account_id AND i.status = 'failed' AND i.due_at >= {win}
            AND i.due_at <= c.churn_at)"""
    gates = list(source.event_map.gate_events)
    if gates:
        names = ", ".join("'" + g.replace("'", "''") + "'" for g in gates)
        parts["gate_hits"] = f"""(SELECT COUNT(*) FROM events e WHERE e.account_id =
            c.account_id AND e.event IN ({names}) AND e.occurred_at >= {win}
            AND e.occurred_at < c.churn_at)"""
    select = ", ".join(f"{sql} AS {col}" for col, sql in parts.items())
    source.con.register(name, frame)
    try:
        out = source.sql(f"SELECT c.row, {select} FROM {name} c ORDER BY c.row")
    finally:
        source.con.unregister(name)
    return out


def _contracted_before(
    subscriptions: pd.DataFrame, churns: pd.DataFrame, window_days: int
) -> np.ndarray:
    """Whether a paid period of the account started at a lower ARR in the window before churn."""
    subs = subscriptions.loc[subscriptions["arr"] > 0, ["account_id", "start_at", "arr"]]
    subs = subs.assign(account_id=subs["account_id"].astype(str)).sort_values(
        ["account_id", "start_at"]
    )
    prev = subs.groupby("account_id")["arr"].shift(1)
    cuts = subs[prev.notna() & (subs["arr"] < prev)]
    merged = (
        churns.reset_index(drop=True)
        .assign(row=np.arange(len(churns)), account_id=churns["account_id"].astype(str).to_numpy())
        .merge(cuts, on="account_id", how="inner")
    )
    since = merged["churn_at"] - pd.Timedelta(days=window_days)
    hit = merged[(merged["start_at"] >= since) & (merged["start_at"] <= merged["churn_at"])]
    out = np.zeros(len(churns), dtype=bool)
    out[hit["row"].to_numpy(dtype=int)] = True
    return out


def churn_reasons(
    source: DataSource,
    churns: pd.DataFrame,
    *,
    subscriptions: pd.DataFrame,
    spec: WinbackSpec,
    bands: Sequence[TimingBand],
) -> np.ndarray:
    """The inferred reason of each churn (row order of `churns`)."""
    if churns.empty:
        return np.array([], dtype=object)
    window = spec.reason_window_days
    ev = _evidence(source, churns, window)
    tests = {
        CHAMPION_LEFT: ev["champion_left"].to_numpy() > 0,
        BUDGET: (ev["failed_invoice"].to_numpy() > 0)
        | _contracted_before(subscriptions, churns, window),
        ONBOARDING: np.isin(band_of(churns["tenure_days"], bands), list(spec.onboarding_bands)),
        MISSING_FEATURE: ev["gate_hits"].to_numpy() >= GATE_HITS,
    }
    reasons = np.full(len(churns), UNKNOWN_REASON, dtype=object)
    decided = np.zeros(len(churns), dtype=bool)
    for row in spec.reasons:
        hit = tests.get(row.reason)
        if hit is None:
            continue
        reasons[hit & ~decided] = row.reason
        decided |= hit
    return reasons
