"""The theme table leadership reads: per theme over the latest quarter, mentions, unique
accounts, ARR affected, trend, the segment most affected, quotes, sentiment, and its
churn / expansion correlation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.voice.correlation import correlation_reading

WINDOW_DAYS = 90  # the quarter the headline figures cover
MONTH_DAYS = 30  # trend: the latest 30 days against the mean of the three 30 days before
TREND_UP, TREND_DOWN = 1.25, 0.8
QUOTE_CHARS = 220
NEGATIVE = -0.05  # VADER's usual cut for a negative text
MIN_SEGMENT_MENTIONS = 5


@dataclass(frozen=True)
class ThemeReport:
    """What `nrr themes` writes and GET /v1/themes serves."""

    data_end: pd.Timestamp
    window_days: int
    texts: int
    themes: pd.DataFrame  # one row per theme, THEME_COLUMNS
    overlap: dict[int, float]  # how distinct the themes were for each number tried
    correlation_rows: int  # labelled account-months behind the correlations

    def to_dict(self) -> dict[str, Any]:
        # through JSON: plain Python numbers, NaN as null (json.dumps rejects numpy types)
        rows = json.loads(self.themes.to_json(orient="records"))
        return {
            "data_end": self.data_end.isoformat(),
            "window_days": self.window_days,
            "texts": self.texts,
            "correlation_rows": self.correlation_rows,
            "themes_tried": {str(k): round(v, 4) for k, v in self.overlap.items()},
            "themes": rows,
        }


def _trend(at: pd.Series, end: pd.Timestamp) -> tuple[float, float, str]:
    month = pd.Timedelta(days=MONTH_DAYS)
    last = float(((at >= end - month) & (at < end)).sum())
    before = float(((at >= end - 4 * month) & (at < end - month)).sum()) / 3.0
    ratio = last / before if before > 0 else (np.inf if last > 0 else np.nan)
    word = "new" if before == 0 and last > 0 else "stable"
    if before > 0:
        word = "up" if ratio >= TREND_UP else "down" if ratio <= TREND_DOWN else "stable"
    return last, before, word


def _quotes(texts: pd.DataFrame, n: int) -> list[str]:
    """The texts the theme explains best (highest weight share), one per account, distinct."""
    ranked = texts.sort_values(["share", "at"], ascending=[False, False])
    ranked = ranked.drop_duplicates("text").drop_duplicates("account_id")
    return [_clip(t) for t in ranked["text"].head(n)]


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1].rstrip() + "…"


def _segment(texts: pd.DataFrame, baseline: pd.Series) -> tuple[str | None, float]:
    """The segment where the theme is most over-represented: its share of the theme's
    mentions over its share of all texts (so a segment that simply writes more is not
    "most affected" of every theme); segments with fewer than MIN_SEGMENT_MENTIONS skipped."""
    counts = texts.groupby("segment").size()
    counts = counts[counts >= MIN_SEGMENT_MENTIONS]
    if counts.empty or baseline.sum() <= 0:
        return None, float("nan")
    lift = (counts / len(texts)) / (baseline.reindex(counts.index) / baseline.sum())
    lift = lift.dropna()
    if lift.empty:
        return None, float("nan")
    return str(lift.idxmax()), float(lift.max())


def theme_rows(
    corpus: pd.DataFrame,
    *,
    names: tuple[str, ...],
    terms: tuple[tuple[str, ...], ...],
    data_end: pd.Timestamp,
    quotes: int,
) -> pd.DataFrame:
    """One row per theme from the corpus (with `theme` and `share` per text)."""
    start = data_end - pd.Timedelta(days=WINDOW_DAYS)
    recent = corpus[(corpus["at"] >= start) & (corpus["at"] < data_end)]
    baseline = recent.groupby("segment").size().astype(float)
    rows = []
    for j, name in enumerate(names):
        mine = recent[recent["theme"] == j]
        latest = mine.sort_values("at").drop_duplicates("account_id", keep="last")
        last, before, trend = _trend(corpus.loc[corpus["theme"] == j, "at"], data_end)
        segment, segment_lift = _segment(mine, baseline)
        rows.append(
            {
                "theme": j,
                "name": name,
                "terms": ", ".join(terms[j]),
                "mentions": len(mine),
                "accounts": int(latest["account_id"].nunique()),
                "arr_affected": float(latest["arr"].sum()),
                "trend": trend,
                "mentions_last_30d": last,
                "mentions_per_30d_before": before,
                "segment_most_affected": segment,
                "segment_lift": segment_lift,
                "sentiment": float(mine["sentiment"].mean()) if len(mine) else np.nan,
                "negative_share": float((mine["sentiment"] < NEGATIVE).mean())
                if len(mine)
                else np.nan,
                "mentions_all_time": int((corpus["theme"] == j).sum()),
                "quotes": _quotes(mine if len(mine) else corpus[corpus["theme"] == j], quotes),
            }
        )
    return pd.DataFrame(rows)


def add_correlation(themes: pd.DataFrame, correlation: pd.DataFrame) -> pd.DataFrame:
    """The theme rows with their churn / expansion ratios and a word for each."""
    out = themes.merge(correlation, on="theme", how="left")
    for short in ("churn", "expand"):
        out[f"{short}_reading"] = [
            correlation_reading(lo, hi) if np.isfinite(lo) and np.isfinite(hi) else "too few"
            for lo, hi in zip(
                out[f"{short}_ratio_low"].astype(float),
                out[f"{short}_ratio_high"].astype(float),
                strict=True,
            )
        ]
    return out.sort_values(["arr_affected", "mentions"], ascending=False).reset_index(drop=True)
