"""Churn timing cohorts (seed workflow phase 5, step 1): when in the relationship churn happens.

Each churn (`models.outcomes.churns.churn_events`) falls in a tenure band of
experiments/outcomes.yaml (days 0-30 activation failure, 31-90 adoption stall, 91-180 value
gap, 180+ relationship decay). The tables give each band's share of churned logos and ARR,
over the whole book and by segment and ICP fit when the accounts table has them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.outcomes.config import TimingBand
from models.revenue.nrr import UNKNOWN

TIMING_SPLITS: tuple[str, ...] = ("segment", "icp_fit")
ALL = "All"
TIMING_COLUMNS: tuple[str, ...] = (
    "split",
    "group",
    "band",
    "tenure_days",
    "churned_logos",
    "churned_arr",
    "logo_share",
    "arr_share",
)


def band_of(tenure_days: pd.Series | np.ndarray, bands: Sequence[TimingBand]) -> np.ndarray:
    """The band name of each tenure: the first band whose max_days it does not exceed."""
    days = np.asarray(tenure_days, dtype=float)
    bounds = np.array([b.max_days for b in bands[:-1]], dtype=float)
    # side="left": a tenure exactly at a max_days belongs to that band (day 30 -> 0-30)
    index = np.searchsorted(bounds, days, side="left")
    return np.array([bands[i].name for i in index], dtype=object)


def band_ranges(bands: Sequence[TimingBand]) -> dict[str, str]:
    """'0-30', '31-90', ..., '181+' per band name, for tables."""
    out, low = {}, 0
    for band in bands:
        out[band.name] = f"{low}+" if band.max_days is None else f"{low}-{band.max_days}"
        low = (band.max_days or 0) + 1
    return out


def available_timing_splits(accounts: pd.DataFrame) -> tuple[str, ...]:
    """The splits this accounts table has values for (icp_fit is optional in the contract)."""
    return tuple(s for s in TIMING_SPLITS if s in accounts.columns and accounts[s].notna().any())


def timing_cohorts(
    churns: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    bands: Sequence[TimingBand],
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Share of churned logos and ARR per tenure band: pooled, then per segment and ICP fit.

    `churns` is `churn_events`; `since` keeps churns on or after it. Every band appears in
    every group (zero when none churned there), so shares of a group sum to 1.
    """
    if since is not None:
        churns = churns[churns["churn_at"] >= since]
    splits = available_timing_splits(accounts)
    frame = churns.assign(band=band_of(churns["tenure_days"], bands))
    if splits:
        attrs = accounts.loc[:, ["account_id", *splits]].drop_duplicates("account_id")
        attrs = attrs.assign(account_id=attrs["account_id"].astype("string"))
        frame = frame.merge(attrs, on="account_id", how="left")
    parts = [_shares(frame.assign(group=ALL), "all", bands)]
    for split in splits:
        group = frame[split].astype("string").fillna(UNKNOWN)
        parts.append(_shares(frame.assign(group=group), split, bands))
    return pd.concat(parts, ignore_index=True).loc[:, list(TIMING_COLUMNS)]


def _shares(frame: pd.DataFrame, split: str, bands: Sequence[TimingBand]) -> pd.DataFrame:
    names = [b.name for b in bands]
    groups = sorted(frame["group"].dropna().unique()) or ([ALL] if split == "all" else [])
    grid = pd.MultiIndex.from_product([groups, names], names=["group", "band"])
    sums = frame.groupby(["group", "band"]).agg(
        churned_logos=("account_id", "size"), churned_arr=("churned_arr", "sum")
    )
    out = sums.reindex(grid, fill_value=0).reset_index()
    totals = out.groupby("group")[["churned_logos", "churned_arr"]].transform("sum")
    ranges = band_ranges(bands)
    return out.assign(
        split=split,
        tenure_days=out["band"].map(ranges),
        churned_logos=out["churned_logos"].astype("int64"),
        churned_arr=out["churned_arr"].astype(float),
        logo_share=out["churned_logos"]
        / totals["churned_logos"].where(totals["churned_logos"] > 0),
        arr_share=out["churned_arr"] / totals["churned_arr"].where(totals["churned_arr"] > 0),
    )


def timing_reading(table: pd.DataFrame) -> str:
    """One sentence: the band with the largest share of churned ARR, and of logos."""
    pooled = table[table["split"] == "all"]
    if pooled.empty or not (pooled["churned_logos"] > 0).any():
        return "No churn in the period: no timing cohorts."
    by_arr = pooled.loc[pooled["arr_share"].idxmax()]
    by_logo = pooled.loc[pooled["logo_share"].idxmax()]
    total = int(pooled["churned_logos"].sum())
    text = (
        f"Of {total} churned accounts, {by_arr['arr_share']:.0%} of churned ARR left in the "
        f"'{by_arr['band']}' band (days {by_arr['tenure_days']})"
    )
    if by_logo["band"] != by_arr["band"]:
        text += f"; most logos ({by_logo['logo_share']:.0%}) in '{by_logo['band']}'"
    return text + "."
