"""NRR decomposition of the subscription history: ARR flows per period, splits and cohorts.

Accounting compares each account's ARR at the start of a period with its ARR at the end
(the standard point-in-time method). A period starting at most the grace window after the
previous one ended continues it (`features.sql.continues`, the rule the labels and features
use): the account keeps its previous ARR (and plan) through the gap. A later start is churn
at the end of the last period and reactivation when ARR returns. Periods with ARR 0 count
as gaps. A trailing gap whose continuation could still start after `data_end` is
undecided and is carried as continuation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.sql import continues, grace_deadline

Freq = Literal["month", "quarter"]
SPLITS: tuple[str, ...] = (
    "segment",
    "plan",
    "industry",
    "icp_fit",
    "acquisition_channel",
    "cohort",
)
FLOW_COLUMNS: tuple[str, ...] = (
    "new_arr",
    "reactivation_arr",
    "expansion_arr",
    "contraction_arr",
    "churned_arr",
)
UNKNOWN = "Unknown"
_TS = "datetime64[ns]"


def _require(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table} is missing required column(s) {missing}")


def _timestamps(series: pd.Series, name: str) -> pd.Series:
    if not pd.api.types.is_datetime64_dtype(series.dtype):
        raise ValueError(f"{name} must be naive UTC datetime64, got dtype {series.dtype}")
    return series.astype(_TS)


def arr_timeline(
    subscriptions: pd.DataFrame, *, data_end: pd.Timestamp, grace_days: int = 30
) -> pd.DataFrame:
    """Per account, non-overlapping ARR intervals with continuations bridged, spells numbered.

    Columns: account_id, start_at, end_at (NaT = open), arr, plan, spell (0 = first ever).
    """
    _require(subscriptions, ("account_id", "start_at", "end_at", "plan", "arr"), "subscriptions")
    if grace_days < 0:
        raise ValueError(f"grace_days must be >= 0, got {grace_days}")
    arr = pd.to_numeric(subscriptions["arr"], errors="raise").astype(float)
    if arr.isna().any() or (arr < 0).any():
        raise ValueError("subscriptions.arr must be non-null and >= 0")
    subs = pd.DataFrame(
        {
            "account_id": subscriptions["account_id"].astype("string"),
            "start_at": _timestamps(subscriptions["start_at"], "subscriptions.start_at"),
            "end_at": _timestamps(subscriptions["end_at"], "subscriptions.end_at"),
            "arr": arr,
            "plan": subscriptions["plan"].astype("string"),
        }
    )
    if subs["start_at"].isna().any() or subs["account_id"].isna().any():
        raise ValueError("subscriptions.start_at and account_id must be non-null")
    if (subs["end_at"] <= subs["start_at"]).any():
        raise ValueError("subscriptions.end_at must be after start_at")
    # ARR 0 is no revenue: such periods are treated exactly like gaps.
    subs = subs[subs["arr"] > 0].sort_values(["account_id", "start_at"], kind="stable")
    subs = subs.reset_index(drop=True)
    acct = subs["account_id"]
    same_next = acct.shift(-1).eq(acct).fillna(False).astype(bool)
    next_start = subs["start_at"].shift(-1).where(same_next)
    gap = next_start - subs["end_at"]
    if (gap < pd.Timedelta(0)).any() or (same_next & subs["end_at"].isna()).any():
        raise ValueError("subscriptions: periods of one account overlap")
    bridged = same_next & continues(next_start, subs["end_at"], grace_days)
    # Undecided: a continuation could still start after the last observed moment.
    deadline = grace_deadline(subs["end_at"], grace_days)
    pending = ~same_next & subs["end_at"].notna() & (data_end < deadline)
    subs["end_at"] = subs["end_at"].mask(bridged, next_start).mask(pending, pd.NaT)
    first = ~acct.eq(acct.shift(1)).fillna(False).astype(bool)
    new_spell = first | ~bridged.shift(1, fill_value=False)
    subs["spell"] = new_spell.astype(int).groupby(acct).cumsum() - 1
    return subs


def arr_at(timeline: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """ARR, spell and plan at each (account_id, at) point: ARR 0, spell -1 when inactive."""
    left = pd.DataFrame(
        {
            "account_id": pd.array(points["account_id"], dtype="string"),
            "at": _timestamps(points["at"], "points.at").to_numpy(),
            "_row": np.arange(len(points)),
        }
    ).sort_values("at", kind="stable")
    right = timeline.loc[:, ["account_id", "start_at", "end_at", "arr", "spell", "plan"]]
    right = right.assign(account_id=right["account_id"].astype("string"))
    merged = pd.merge_asof(
        left,
        right.sort_values("start_at", kind="stable"),
        left_on="at",
        right_on="start_at",
        by="account_id",
        direction="backward",
    ).sort_values("_row")
    active = merged["start_at"].notna() & (
        merged["end_at"].isna() | (merged["at"] < merged["end_at"])
    )
    return pd.DataFrame(
        {
            "account_id": merged["account_id"].to_numpy(),
            "at": merged["at"].to_numpy(),
            "arr": merged["arr"].where(active, 0.0).to_numpy(dtype=float),
            "spell": merged["spell"].where(active, -1).to_numpy(dtype=np.int64),
            "plan": merged["plan"].where(active).astype("string").to_numpy(),
        },
        index=points.index,
    )


def account_flows(timeline: pd.DataFrame, *, boundaries: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """Per account and consecutive pair of boundaries: start/end ARR and the flows between."""
    bounds = pd.DatetimeIndex(boundaries).astype(_TS)
    if len(bounds) < 2 or not bounds.is_monotonic_increasing or not bounds.is_unique:
        raise ValueError("boundaries must be at least two strictly increasing timestamps")
    accounts = timeline["account_id"].unique()
    n_acc, n_b = len(accounts), len(bounds)
    points = pd.DataFrame(
        {"account_id": np.repeat(accounts, n_b), "at": np.tile(bounds.to_numpy(), n_acc)}
    )
    state = arr_at(timeline, points)
    arr = state["arr"].to_numpy().reshape(n_acc, n_b)
    spell = state["spell"].to_numpy().reshape(n_acc, n_b)
    plan = state["plan"].to_numpy().reshape(n_acc, n_b)
    a0, a1, s0, s1 = arr[:, :-1], arr[:, 1:], spell[:, :-1], spell[:, 1:]
    same = (s0 == s1) & (s0 >= 0)
    delta = np.where(same, a1 - a0, 0.0)
    flows = {
        "new_arr": np.where(~same & (s1 == 0), a1, 0.0),
        "reactivation_arr": np.where(~same & (s1 > 0), a1, 0.0),
        "expansion_arr": np.maximum(delta, 0.0),
        "contraction_arr": np.maximum(-delta, 0.0),
        "churned_arr": np.where(~same & (s0 >= 0), a0, 0.0),
    }
    keep = ((a0 > 0) | (a1 > 0)).ravel()
    plan0, plan1 = plan[:, :-1].ravel(), plan[:, 1:].ravel()
    out = pd.DataFrame(
        {
            "account_id": np.repeat(accounts, n_b - 1),
            "period_start": np.tile(bounds[:-1].to_numpy(), n_acc),
            "period_end": np.tile(bounds[1:].to_numpy(), n_acc),
            "arr_start": a0.ravel(),
            "arr_end": a1.ravel(),
            # plan at period start; accounts that start during the period take their first plan
            "plan": pd.array(np.where(pd.isna(plan0), plan1, plan0), dtype="string"),
            **{name: values.ravel() for name, values in flows.items()},
        }
    )
    return out[keep].reset_index(drop=True)


def _floor_period(ts: pd.Timestamp, freq: Freq) -> pd.Timestamp:
    month = ts.month if freq == "month" else 3 * ((ts.month - 1) // 3) + 1
    return pd.Timestamp(year=ts.year, month=month, day=1)


def period_boundaries(*, freq: Freq, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """Grid points (month or quarter starts) from the first at or after `first` to `last`."""
    if freq not in ("month", "quarter"):
        raise ValueError(f"freq must be 'month' or 'quarter', got {freq!r}")
    start = _floor_period(first, freq)
    if start < first:
        start = start + pd.DateOffset(months=1 if freq == "month" else 3)
    return pd.date_range(start, last, freq="MS" if freq == "month" else "QS").astype(_TS)


def period_label(period_start: pd.Series, freq: Freq) -> pd.Series:
    """'2024-01' for months, '2024Q1' for quarters."""
    if freq == "month":
        return period_start.dt.strftime("%Y-%m").astype("string")
    return quarter_label(period_start)


def quarter_label(ts: pd.Series) -> pd.Series:
    """Calendar quarter of each timestamp as '2024Q1' (NA stays NA)."""
    text = (
        ts.dt.year.astype("Int64").astype("string")
        + "Q"
        + ts.dt.quarter.astype("Int64").astype("string")
    )
    return text.astype("string")


def available_splits(accounts: pd.DataFrame) -> tuple[str, ...]:
    """The splits this accounts table supports: columns present with at least one value."""
    static = [s for s in SPLITS if s not in ("plan", "cohort")]
    present = {s for s in static if s in accounts.columns and accounts[s].notna().any()}
    if "created_at" in accounts.columns and accounts["created_at"].notna().any():
        present.add("cohort")
    present.add("plan")
    return tuple(s for s in SPLITS if s in present)


def _split_keys(by: str | Sequence[str] | None, accounts: pd.DataFrame) -> list[str]:
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    unknown = [k for k in keys if k not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; choose from {list(SPLITS)}")
    absent = [k for k in keys if k not in available_splits(accounts)]
    if absent:
        raise ValueError(
            f"accounts has no values for split(s) {absent}; "
            f"available: {list(available_splits(accounts))}"
        )
    return keys


def _attach_splits(flows: pd.DataFrame, accounts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    static = [k for k in keys if k != "plan"]
    if not static:
        out = flows.copy()
    else:
        attrs = pd.DataFrame({"account_id": accounts["account_id"].astype("string")})
        for key in static:
            if key == "cohort":
                created = _timestamps(accounts["created_at"], "accounts.created_at")
                attrs[key] = quarter_label(created).to_numpy()
            else:
                attrs[key] = accounts[key].astype("string").to_numpy()
        attrs = attrs.drop_duplicates("account_id")
        out = flows.merge(attrs, on="account_id", how="left")
    for key in keys:
        out[key] = out[key].astype("string").fillna(UNKNOWN)
    if keys:
        group = out[keys[0]]
        for key in keys[1:]:
            group = group + " - " + out[key]
        out["group"] = group.astype("string")
    return out


def _summarise(flows: pd.DataFrame, group_cols: list[str]) -> pd.DataFrame:
    g = flows.assign(
        starting_logos=flows["arr_start"] > 0, churned_logos=flows["churned_arr"] > 0
    ).groupby(group_cols, sort=True, dropna=False)
    out = g[["arr_start", "arr_end", *FLOW_COLUMNS, "starting_logos", "churned_logos"]].sum()
    out = out.rename(columns={"arr_start": "starting_arr", "arr_end": "ending_arr"})
    return out.reset_index()


def _ratios(frame: pd.DataFrame) -> pd.DataFrame:
    start = frame["starting_arr"].where(frame["starting_arr"] > 0)
    logos = frame["starting_logos"].where(frame["starting_logos"] > 0)
    lost = frame["contraction_arr"] + frame["churned_arr"]
    return frame.assign(
        starting_logos=frame["starting_logos"].astype("int64"),
        churned_logos=frame["churned_logos"].astype("int64"),
        net_new_arr=frame["new_arr"] + frame["reactivation_arr"] + frame["expansion_arr"] - lost,
        nrr=(frame["starting_arr"] + frame["expansion_arr"] - lost) / start,
        grr=(frame["starting_arr"] - lost) / start,
        logo_churn_rate=frame["churned_logos"] / logos,
    )


OUTPUT_COLUMNS: tuple[str, ...] = (
    "starting_arr",
    *FLOW_COLUMNS,
    "ending_arr",
    "net_new_arr",
    "nrr",
    "grr",
    "starting_logos",
    "churned_logos",
    "logo_churn_rate",
)


def decompose(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    freq: Freq = "month",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    grace_days: int = 30,
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """ARR bridge per complete period (and split): starting + flows = ending, NRR, GRR, logos.

    Only periods that end on or before `data_end` (and `end`) are reported. `by` names one
    split or several for a combined cohort ("segment", "industry", "cohort" gives groups like
    "Enterprise - Finance - 2024Q1" in the `group` column). net_new_arr includes reactivation,
    so starting_arr + net_new_arr == ending_arr.
    """
    _require(accounts, ("account_id",), "accounts")
    keys = _split_keys(by, accounts)
    timeline = arr_timeline(subscriptions, data_end=data_end, grace_days=grace_days)
    group_cols = ["period_start", "period_end", *keys, *(["group"] if keys else [])]
    columns = ["period_start", "period_end", "period_label", *group_cols[2:], *OUTPUT_COLUMNS]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    first = start if start is not None else timeline["start_at"].min()
    last = min(end, data_end) if end is not None else data_end
    bounds = period_boundaries(freq=freq, first=first, last=last)
    if len(bounds) < 2:
        return pd.DataFrame(columns=columns)
    flows = _attach_splits(account_flows(timeline, boundaries=bounds), accounts, keys)
    table = _summarise(flows, group_cols)
    if not keys:
        # every period appears in the pooled bridge, also one without any ARR
        grid = pd.DataFrame({"period_start": bounds[:-1], "period_end": bounds[1:]})
        table = grid.merge(table, on=["period_start", "period_end"], how="left").fillna(0)
    table["period_label"] = period_label(table["period_start"], freq)
    return _ratios(table).loc[:, columns].reset_index(drop=True)


def cohort_heatmap(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    grace_days: int = 30,
    max_months: int | None = None,
) -> pd.DataFrame:
    """Signup-quarter cohort x months since each account's first ARR -> ARR retained / start.

    A cell is reported only when every account of the cohort has reached that month by
    `data_end`, so later cohorts form the usual triangle. Columns: cohort,
    months_since_start, accounts, starting_arr, retained_arr, retention.
    """
    _require(accounts, ("account_id", "created_at"), "accounts")
    timeline = arr_timeline(subscriptions, data_end=data_end, grace_days=grace_days)
    # the timeline is sorted by account and start: the first row is the first ARR
    firsts = timeline.drop_duplicates("account_id", keep="first").reset_index(drop=True)
    cohorts = pd.DataFrame(
        {
            "account_id": accounts["account_id"].astype("string").to_numpy(),
            "cohort": quarter_label(
                _timestamps(accounts["created_at"], "accounts.created_at")
            ).to_numpy(),
        }
    ).drop_duplicates("account_id")
    firsts = firsts.merge(cohorts, on="account_id", how="left")
    firsts["cohort"] = firsts["cohort"].astype("string").fillna(UNKNOWN)
    columns = ["cohort", "months_since_start", "accounts", "starting_arr", "retained_arr"]
    if firsts.empty:
        return pd.DataFrame(columns=[*columns, "retention"])
    span = (data_end.year - firsts["start_at"].min().year) * 12 + 12
    horizon = span if max_months is None else min(span, max_months)
    size = firsts.groupby("cohort")["account_id"].count()
    cells = []
    for month in range(horizon + 1):
        at = firsts["start_at"] + pd.DateOffset(months=month)
        seen = firsts[at <= data_end]
        if seen.empty:
            break
        points = pd.DataFrame({"account_id": seen["account_id"], "at": at[seen.index]})
        state = arr_at(timeline, points)
        cell = seen.assign(retained_arr=state["arr"].to_numpy()).groupby("cohort")
        summary = cell.agg(
            accounts=("account_id", "count"),
            starting_arr=("arr", "sum"),
            retained_arr=("retained_arr", "sum"),
        )
        complete = summary[summary["accounts"] == size.reindex(summary.index)]
        cells.append(complete.reset_index().assign(months_since_start=month))
    out = pd.concat(cells, ignore_index=True).loc[:, columns]
    out["retention"] = out["retained_arr"] / out["starting_arr"]
    return out.sort_values(["cohort", "months_since_start"]).reset_index(drop=True)


@dataclass(frozen=True)
class CohortExtremes:
    """Best and worst cohorts by trailing NRR over [window_start, window_end)."""

    best: pd.DataFrame
    worst: pd.DataFrame
    ranked: pd.DataFrame
    window_start: pd.Timestamp
    window_end: pd.Timestamp


def best_and_worst_cohorts(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    by: Sequence[str] = ("segment", "industry", "cohort"),
    window_months: int = 12,
    min_starting_arr: float = 0.0,
    min_logos: int = 5,
    n: int = 3,
    grace_days: int = 30,
) -> CohortExtremes:
    """Rank cohorts by NRR over the trailing window ending at the last month start.

    Splits in `by` that the accounts table lacks are dropped. Cohorts below
    `min_starting_arr` or `min_logos` at the window start are not ranked.
    """
    if window_months < 1 or n < 1:
        raise ValueError("window_months and n must be >= 1")
    keys = [k for k in by if k in available_splits(accounts)]
    window_end = _floor_period(data_end, "month")
    window_start = window_end - pd.DateOffset(months=window_months)
    timeline = arr_timeline(subscriptions, data_end=data_end, grace_days=grace_days)
    flows = account_flows(timeline, boundaries=[window_start, window_end])
    flows = _attach_splits(flows, accounts, _split_keys(keys, accounts))
    table = _ratios(_summarise(flows, ["group", *keys] if keys else ["period_start"]))
    eligible = table[
        (table["starting_arr"] > 0)
        & (table["starting_arr"] >= min_starting_arr)
        & (table["starting_logos"] >= min_logos)
    ]
    ranked = eligible.sort_values(["nrr", "starting_arr"], ascending=[False, False])
    ranked = ranked.reset_index(drop=True)
    best = ranked.head(n)
    worst = ranked.iloc[len(best) :].sort_values("nrr").head(n).reset_index(drop=True)
    return CohortExtremes(best, worst, ranked, window_start, window_end)


@dataclass(frozen=True)
class NrrBands:
    """NRR bands (ratios, lower bounds of the upper bands) and the strategy for each."""

    thresholds: tuple[float, ...]
    names: tuple[str, ...]
    strategies: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.thresholds) + 1 or len(self.strategies) != len(self.names):
            raise ValueError("NrrBands needs one more name and strategy than thresholds")
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError("NrrBands thresholds must be strictly increasing")


def nrr_band(nrr: float, *, bands: NrrBands) -> tuple[str, str]:
    """The band name and strategy text for an NRR ratio (1.05 = 105%)."""
    if not np.isfinite(nrr):
        raise ValueError(f"nrr must be a finite ratio, got {nrr}")
    index = int(np.searchsorted(np.asarray(bands.thresholds), nrr, side="right"))
    return bands.names[index], bands.strategies[index]


@dataclass(frozen=True)
class SegmentBenchmark:
    """Reference NRR ratios for a segment: median, top quartile and best in class."""

    median: float
    top_quartile: float
    best: float


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass(frozen=True)
class SegmentContext:
    """Where an NRR sits against its segment's benchmarks."""

    segment: str
    position: Literal["below median", "median to top quartile", "top quartile", "best in class"]
    benchmark: SegmentBenchmark
    text: str = field(default="")


def segment_context(
    nrr: float,
    segment: str,
    *,
    benchmarks: Mapping[str, SegmentBenchmark],
) -> SegmentContext | None:
    """Compare an NRR ratio with its segment's benchmarks; None for an unknown segment."""
    match = {_norm(k): (k, v) for k, v in benchmarks.items()}.get(_norm(segment))
    if match is None or not np.isfinite(nrr):
        return None
    name, bench = match
    position: Literal["below median", "median to top quartile", "top quartile", "best in class"]
    if nrr >= bench.best:
        position = "best in class"
    elif nrr >= bench.top_quartile:
        position = "top quartile"
    elif nrr >= bench.median:
        position = "median to top quartile"
    else:
        position = "below median"
    text = (
        f"{nrr:.0%} NRR is {position} for {name} (median {bench.median:.0%}, "
        f"top quartile {bench.top_quartile:.0%}, best {bench.best:.0%})"
    )
    return SegmentContext(name, position, bench, text)
