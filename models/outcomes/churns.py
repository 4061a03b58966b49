"""Churn events of the subscription history: one row per relationship that ended.

The one churn definition of the project: `models.revenue.nrr.arr_timeline` bridges periods
by the grace rule of `features.sql` and numbers the spells (relationships); a spell whose
last period has an end is a churn at that end (a trailing end whose continuation could still
start after data_end is undecided and not a churn). A later spell is a reactivation.
"""

from __future__ import annotations

import pandas as pd

from models.revenue.nrr import arr_timeline

CHURN_COLUMNS: tuple[str, ...] = (
    "account_id",
    "spell",
    "relationship_start",
    "churn_at",
    "churned_arr",
    "tenure_days",
    "returned_at",
)


def churn_events(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    grace_days: int,
) -> pd.DataFrame:
    """One row per churned relationship: when it started and ended, its ARR, the return.

    relationship_start is the spell's first paid day; for an account's first spell it is
    accounts.created_at when that is earlier (an export that starts after the customer
    did must not make an old customer look new). churned_arr is the ARR just before the
    churn; returned_at is the start of the next spell (NaT while not back).
    """
    timeline = arr_timeline(subscriptions, data_end=data_end, grace_days=grace_days)
    if timeline.empty:
        return pd.DataFrame(columns=list(CHURN_COLUMNS))
    # the timeline is sorted by account and start: a spell's first and last rows
    keys = ["account_id", "spell"]
    first_rows = timeline.drop_duplicates(keys, keep="first")
    last_rows = timeline.drop_duplicates(keys, keep="last")
    spells = pd.DataFrame(
        {
            "account_id": first_rows["account_id"].to_numpy(),
            "spell": first_rows["spell"].to_numpy(),
            "spell_start": first_rows["start_at"].to_numpy(),
            "end_at": last_rows["end_at"].to_numpy(),
            "arr": last_rows["arr"].to_numpy(),
        }
    )
    spells["account_id"] = spells["account_id"].astype("string")
    nxt = spells.groupby("account_id")["spell_start"].shift(-1)
    spells["returned_at"] = nxt
    start = spells["spell_start"]
    if "created_at" in accounts.columns:
        created = accounts.loc[:, ["account_id", "created_at"]].drop_duplicates("account_id")
        created = created.assign(
            account_id=created["account_id"].astype("string"),
            created_at=pd.to_datetime(created["created_at"]).astype("datetime64[ns]"),
        )
        spells = spells.merge(created, on="account_id", how="left")
        first = (spells["spell"] == 0) & (spells["created_at"] < spells["spell_start"])
        start = spells["spell_start"].mask(first, spells["created_at"])
    churned = spells.assign(relationship_start=start)[spells["end_at"].notna()]
    tenure = (churned["end_at"] - churned["relationship_start"]) // pd.Timedelta(days=1)
    out = churned.assign(
        churn_at=churned["end_at"],
        churned_arr=churned["arr"].astype(float),
        tenure_days=tenure.astype("int64"),
    )
    return out.loc[:, list(CHURN_COLUMNS)].reset_index(drop=True)
