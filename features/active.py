"""The active book: which accounts are customers at as_of, one definition for every path.

An account is active at as_of when a paid period (ARR > 0) is in force then:
`start_at <= as_of < coalesce(end_at, +infinity)` - the data contract's rule, the one the
snapshot spine (`features.spine.build_spine`, hence the API's snapshot rows), batch
scoring (`nrr score`) and the forecast book (`models.revenue.forecast_book.book_at`) all
follow. An account whose term ended before as_of without a new period is not active, even
inside the grace window: it has no contract then (the NRR bridge may still carry it as an
undecided continuation, but nothing can be scored for it, and a renewal within the grace
window brings it back).
"""

from __future__ import annotations

import pandas as pd


def active_accounts(subscriptions: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.Index:
    """Sorted account ids with a paid period in force at as_of (see the module docstring)."""
    missing = {"account_id", "start_at", "end_at", "arr"} - set(subscriptions.columns)
    if missing:
        raise ValueError(f"subscriptions lack columns {sorted(missing)}")
    start = pd.to_datetime(subscriptions["start_at"])
    end = pd.to_datetime(subscriptions["end_at"])
    arr = pd.to_numeric(subscriptions["arr"], errors="coerce")
    when = pd.Timestamp(as_of)
    in_force = (start <= when) & (end.isna() | (when < end)) & (arr > 0)
    ids = subscriptions.loc[in_force.to_numpy(), "account_id"].astype("string")
    return pd.Index(sorted(set(ids.dropna())), dtype="string", name="account_id")


def active_accounts_in(source: object, *, as_of: pd.Timestamp) -> pd.Index:
    """`active_accounts` of a `features.source.DataSource`'s subscriptions table."""
    frame = source.sql(  # type: ignore[attr-defined]
        "SELECT account_id, start_at, end_at, arr FROM subscriptions"
    )
    return active_accounts(frame, as_of=as_of)
