"""Did the plays work? Saved at-risk accounts against a matched comparison group (part 2).

An intervention is (account, play, started_at). Its start is the month start on or before
started_at: the account's churn probability and health band there (features strictly
before it, so the play cannot leak into them) say how at risk it was. Only accounts below
the saved bands (experiments/outcomes.yaml `interventions.saved_bands`) count as at risk;
their health band is the risk level. `outcome_days` later an account is
- retained: it still has ARR (the churn definition of models.revenue.nrr), and
- saved: retained and, at the first month start from then on, in a saved health band.
The comparison group: at the same month start, at-risk accounts of the same risk level
with no play in the `outcome_days` before or after it; each treated account takes the
`controls_per_treated` nearest by churn probability (within `caliper`, with replacement).
The effect is the treated rate minus the mean rate of their matched controls, with a 95%
bootstrap interval over treated accounts (each with its matched set).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.outcomes.config import InterventionSpec
from models.revenue.nrr import arr_at

ALL_LEVELS = "All at-risk"
BOOTSTRAP = 1000
RESULT_COLUMNS: tuple[str, ...] = (
    "risk_level",
    "play",
    "treated",
    "matched",
    "saved_rate",
    "control_saved_rate",
    "saved_effect",
    "saved_low",
    "saved_high",
    "retained_rate",
    "control_retained_rate",
    "retained_effect",
    "retained_low",
    "retained_high",
)


def month_floor(ts: pd.Series) -> pd.Series:
    """The month start at 00:00 on or before each timestamp."""
    return ts.dt.to_period("M").dt.to_timestamp()


def next_month_start(ts: pd.Series) -> pd.Series:
    """The first month start at or after each timestamp."""
    floor = month_floor(ts)
    return floor.where(floor >= ts, floor + pd.DateOffset(months=1))


def score_dates(
    plays: pd.DataFrame, *, outcome_days: int, data_end: pd.Timestamp
) -> list[pd.Timestamp]:
    """The month starts whose scores the report needs: each start and each outcome month."""
    start = month_floor(plays["started_at"])
    outcome = next_month_start(start + pd.Timedelta(days=outcome_days))
    dates = sorted(set(start) | set(outcome))
    return [pd.Timestamp(d) for d in dates if d <= data_end]


@dataclass(frozen=True)
class InterventionReport:
    """Per risk level and play: rates and effects; the units behind them; what was left out."""

    results: pd.DataFrame
    units: pd.DataFrame  # one row per evaluated play with its matched controls' rates
    pending: int  # plays whose outcome date lies after the data
    not_at_risk: int  # plays on accounts already in a saved band at the start
    unscored: int  # plays on accounts without a score at the start (no ARR then)
    unmatched: int  # at-risk plays with no comparison account within the caliper


def _outcomes(
    rows: pd.DataFrame, *, scores: pd.DataFrame, timeline: pd.DataFrame, spec: InterventionSpec
) -> pd.DataFrame:
    """retained / saved of (account_id, as_of) rows, outcome_days after as_of."""
    at = rows["as_of"] + pd.Timedelta(days=spec.outcome_days)
    state = arr_at(timeline, pd.DataFrame({"account_id": rows["account_id"], "at": at}))
    later = scores.loc[:, ["account_id", "as_of", "health_band"]].rename(
        columns={"as_of": "outcome_as_of", "health_band": "outcome_band"}
    )
    keyed = rows.assign(outcome_as_of=next_month_start(at)).merge(
        later, on=["account_id", "outcome_as_of"], how="left"
    )
    retained = state["arr"].to_numpy() > 0
    healthy = keyed["outcome_band"].isin(spec.saved_bands).to_numpy()
    return rows.assign(retained=retained, saved=retained & healthy)


def evaluate_interventions(
    plays: pd.DataFrame,
    *,
    scores: pd.DataFrame,
    timeline: pd.DataFrame,
    spec: InterventionSpec,
    data_end: pd.Timestamp,
    seed: int = 0,
) -> InterventionReport:
    """Matched comparison of every play whose outcome is observed (see the module doc)."""
    scores = scores.assign(
        account_id=scores["account_id"].astype("string"),
        as_of=pd.to_datetime(scores["as_of"]).astype("datetime64[ns]"),
    )
    plays = plays.assign(started_at=pd.to_datetime(plays["started_at"]).astype("datetime64[ns]"))
    treated = plays.assign(
        account_id=plays["account_id"].astype("string"),
        as_of=month_floor(plays["started_at"]),
    ).merge(
        scores.loc[:, ["account_id", "as_of", "churn_probability", "health_band"]],
        on=["account_id", "as_of"],
        how="left",
    )
    unscored = int(treated["churn_probability"].isna().sum())
    treated = treated[treated["churn_probability"].notna()]
    at_risk = ~treated["health_band"].isin(spec.saved_bands)
    not_at_risk = int((~at_risk).sum())
    treated = treated[at_risk]
    horizon = pd.Timedelta(days=spec.outcome_days)
    observed = next_month_start(treated["as_of"] + horizon) <= data_end
    pending = int((~observed).sum())
    treated = treated[observed].reset_index(drop=True)
    pool = _control_pool(scores, plays, spec=spec, data_end=data_end)
    pool = _outcomes(pool, scores=scores, timeline=timeline, spec=spec)
    treated = _outcomes(treated, scores=scores, timeline=timeline, spec=spec)
    units = _match(treated, pool, spec=spec)
    unmatched = int(units["controls"].eq(0).sum())
    units = units[units["controls"] > 0].reset_index(drop=True)
    results = _summaries(units, seed=seed)
    return InterventionReport(results, units, pending, not_at_risk, unscored, unmatched)


def _control_pool(
    scores: pd.DataFrame, plays: pd.DataFrame, *, spec: InterventionSpec, data_end: pd.Timestamp
) -> pd.DataFrame:
    """At-risk (account, month start) rows with no play within outcome_days either side."""
    horizon = pd.Timedelta(days=spec.outcome_days)
    rows = scores[~scores["health_band"].isin(spec.saved_bands)]
    rows = rows[next_month_start(rows["as_of"] + horizon) <= data_end]
    rows = rows.loc[:, ["account_id", "as_of", "churn_probability", "health_band"]]
    touched = rows.merge(
        plays.loc[:, ["account_id", "started_at"]].assign(
            account_id=plays["account_id"].astype("string")
        ),
        on="account_id",
    )
    near = (touched["started_at"] >= touched["as_of"] - horizon) & (
        touched["started_at"] < touched["as_of"] + horizon
    )
    bad = touched.loc[near, ["account_id", "as_of"]].drop_duplicates()
    rows = rows.merge(bad.assign(_bad=True), on=["account_id", "as_of"], how="left")
    return rows[rows["_bad"].isna()].drop(columns="_bad").reset_index(drop=True)


def _match(treated: pd.DataFrame, pool: pd.DataFrame, *, spec: InterventionSpec) -> pd.DataFrame:
    """Each treated row with the saved/retained means of its nearest controls."""
    # dict(groupby) would read GroupBy.keys (a list) as a mapping: iterate instead
    groups = {key: part for key, part in pool.groupby(["as_of", "health_band"], sort=False)}  # noqa: C416
    rates = np.full((len(treated), 3), np.nan)  # controls, saved mean, retained mean
    for i, row in enumerate(treated.itertuples(index=False)):
        part = groups.get((row.as_of, row.health_band))
        if part is None:
            rates[i] = (0, np.nan, np.nan)
            continue
        gap = np.abs(part["churn_probability"].to_numpy(float) - row.churn_probability)
        order = np.argsort(gap, kind="stable")[: spec.controls_per_treated]
        order = order[gap[order] <= spec.caliper]
        chosen = part.iloc[order]
        rates[i] = (len(order), chosen["saved"].mean(), chosen["retained"].mean())
    return treated.assign(
        controls=rates[:, 0].astype(int),
        control_saved=rates[:, 1],
        control_retained=rates[:, 2],
    )


def _interval(diff: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    if diff.size < 2:
        return float("nan"), float("nan")
    idx = rng.integers(0, diff.size, (BOOTSTRAP, diff.size))
    low, high = np.quantile(diff[idx].mean(axis=1), [0.025, 0.975])
    return float(low), float(high)


def _summary(part: pd.DataFrame, level: str, play: str, rng: np.random.Generator) -> dict:
    saved = part["saved"].to_numpy(float) - part["control_saved"].to_numpy(float)
    kept = part["retained"].to_numpy(float) - part["control_retained"].to_numpy(float)
    s_low, s_high = _interval(saved, rng)
    r_low, r_high = _interval(kept, rng)
    return {
        "risk_level": level,
        "play": play,
        "treated": len(part),
        "matched": int(part["controls"].sum()),
        "saved_rate": float(part["saved"].mean()),
        "control_saved_rate": float(part["control_saved"].mean()),
        "saved_effect": float(saved.mean()),
        "saved_low": s_low,
        "saved_high": s_high,
        "retained_rate": float(part["retained"].mean()),
        "control_retained_rate": float(part["control_retained"].mean()),
        "retained_effect": float(kept.mean()),
        "retained_low": r_low,
        "retained_high": r_high,
    }


def _summaries(units: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Per play over all levels first, then per risk level from the least to the most at risk
    (by the mean churn probability of its plays: no band name is assumed)."""
    rng = np.random.default_rng(seed)
    rows = [
        _summary(part, ALL_LEVELS, str(play), rng)
        for play, part in units.groupby("play", sort=True)
    ]
    risk = units.groupby("health_band")["churn_probability"].mean().sort_values()
    for level in risk.index:
        part_level = units[units["health_band"] == level]
        rows += [
            _summary(part, str(level), str(play), rng)
            for play, part in part_level.groupby("play", sort=True)
        ]
    return pd.DataFrame(rows).reindex(columns=list(RESULT_COLUMNS))


def interventions_reading(report: InterventionReport) -> str:
    """One sentence: the play with the largest saved effect and the overall save rate."""
    pooled = report.results[report.results["risk_level"] == ALL_LEVELS]
    if pooled.empty:
        return "No intervention with an observed outcome and a matched comparison yet."
    best = pooled.loc[pooled["saved_effect"].idxmax()]
    rate = float(report.units["saved"].mean())
    points = 100 * best["saved_effect"]
    return (
        f"{rate:.0%} of {len(report.units):,} at-risk accounts with a play were saved "
        f"(target 40%+); '{best['play']}' saved {best['saved_rate']:.0%} against "
        f"{best['control_saved_rate']:.0%} of matched accounts without a play: "
        f"{points:+.0f} points (95% interval {100 * best['saved_low']:+.0f} to "
        f"{100 * best['saved_high']:+.0f})."
    )
