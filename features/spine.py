"""The snapshot spine: which (account_id, as_of) pairs get a snapshot.

An account is on the spine at as_of when it has ARR > 0 then, per the data contract:
a period with `start_at <= as_of < coalesce(end_at, +infinity)` and `arr > 0`. as_of
values lie on a grid (month starts or Mondays, 00:00 UTC), never after `data_end`.
"""

from __future__ import annotations

import uuid
from typing import Literal

import pandas as pd

from features.source import DataSource

Freq = Literal["month", "week"]
SPINE_COLUMNS = ("account_id", "as_of")
_OFFSETS: dict[str, pd.DateOffset] = {
    "month": pd.offsets.MonthBegin(),
    "week": pd.offsets.Week(weekday=0),
}


def as_of_grid(*, start: pd.Timestamp, end: pd.Timestamp, freq: Freq) -> pd.DatetimeIndex:
    """Grid points (month starts / Mondays at 00:00) in [start, end]."""
    if freq not in _OFFSETS:
        raise ValueError(f"freq must be 'month' or 'week', got {freq!r}")
    first = _ceil_to_grid(start, freq)
    if first > end:
        return pd.DatetimeIndex([], dtype="datetime64[us]")
    return pd.date_range(first, end, freq=_OFFSETS[freq]).as_unit("us")


def _ceil_to_grid(ts: pd.Timestamp, freq: Freq) -> pd.Timestamp:
    offset = _OFFSETS[freq]
    day = ts.normalize()
    if day == ts and offset.is_on_offset(day):
        return day
    return day + offset  # type: ignore[no-any-return]


def build_spine(
    source: DataSource,
    *,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    freq: Freq = "month",
) -> pd.DataFrame:
    """account_id, as_of for every account with ARR > 0 at each grid date."""
    start, end = _check_bounds(start, end)
    first = source.engine.rows("SELECT MIN(start_at) FROM subscriptions")[0]
    if first is None or first[0] is None:
        return empty_spine()
    lo = max(pd.Timestamp(first[0]), start) if start is not None else pd.Timestamp(first[0])
    hi = min(source.data_end, end) if end is not None else source.data_end
    grid = as_of_grid(start=lo, end=hi, freq=freq)
    if grid.empty:
        return empty_spine()
    name = f"_nrr_grid_{uuid.uuid4().hex[:8]}"
    source.engine.register(name, pd.DataFrame({"as_of": grid}))
    try:
        frame = source.sql(f"""
            SELECT DISTINCT p.account_id, g.as_of
            FROM {name} g
            JOIN subscriptions p
              ON p.start_at <= g.as_of AND (p.end_at IS NULL OR g.as_of < p.end_at)
            WHERE p.arr > 0
            ORDER BY g.as_of, p.account_id
        """)
    finally:
        source.engine.unregister(name)
    return normalise_spine(frame)


def _check_bounds(
    start: pd.Timestamp | None, end: pd.Timestamp | None
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    for label, ts in (("start", start), ("end", end)):
        if ts is not None and ts.tzinfo is not None:
            raise ValueError(f"spine {label} must be a naive UTC timestamp, got {ts}")
    if start is not None and end is not None and start > end:
        raise ValueError(f"spine start {start} is after end {end}")
    return start, end


def empty_spine() -> pd.DataFrame:
    return normalise_spine(pd.DataFrame({"account_id": [], "as_of": []}))


def normalise_spine(frame: pd.DataFrame) -> pd.DataFrame:
    """Spine columns in their canonical dtypes (string ids, naive datetime64[us])."""
    return pd.DataFrame(
        {
            "account_id": frame["account_id"].astype("string"),
            "as_of": pd.to_datetime(frame["as_of"]).astype("datetime64[us]"),
        }
    ).reset_index(drop=True)


def check_spine(spine: pd.DataFrame) -> pd.DataFrame:
    """The spine in canonical dtypes, or ValueError naming what is wrong with it."""
    missing = [c for c in SPINE_COLUMNS if c not in spine.columns]
    if missing:
        raise ValueError(f"spine is missing column(s) {missing}; expected {list(SPINE_COLUMNS)}")
    if spine["account_id"].isna().any() or spine["as_of"].isna().any():
        raise ValueError("spine has null account_id or as_of values")
    out = normalise_spine(spine)
    off_grid = out[out["as_of"] != out["as_of"].dt.normalize()]
    if not off_grid.empty:
        # Features are computed on daily aggregates: an as_of inside a day would let the
        # rest of that day leak in.
        raise ValueError(f"spine as_of must be at 00:00, e.g. {off_grid.iloc[0].to_dict()}")
    dupes = out[out.duplicated(list(SPINE_COLUMNS))]
    if not dupes.empty:
        raise ValueError(f"spine has duplicated keys, e.g. {dupes.iloc[0].to_dict()}")
    return out
