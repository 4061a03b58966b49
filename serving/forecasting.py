"""Leadership forecast tables: the book at as-of, NRR history, Monte Carlo quarter and fan.

Pure functions: frames in, frames out. The forecast covers the existing book only (accounts
with ARR > 0 at as-of); new-logo ARR is out of scope. There is no contraction-probability
model: each account's p_contract is its segment's historical quarterly contraction rate,
measured on the subscriptions known before as-of.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from models.revenue.amounts import AmountModel
from models.revenue.forecast import POOLED, RateShock, simulate_fan, simulate_outcomes
from models.revenue.forecast_book import (
    Renewal,
    account_expectations,
    quarter_of,
    quarter_start,
    simulation_inputs,
)
from models.revenue.nrr import (
    UNKNOWN,
    available_splits,
    best_and_worst_cohorts,
    cohort_heatmap,
    decompose,
)
from models.rules.config import MIN_COHORT_ACCOUNTS

QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
HEALTH_BAND_ORDER: tuple[str, ...] = ("Thriving", "Healthy", "At risk", "Critical", "Churning")
NEW_LOGO_NOTE = (
    "New-logo ARR is out of scope: the forecast covers the existing customer base only "
    "(accounts with ARR at the forecast date)."
)
CONTRACTION_NOTE = (
    "Contraction probability is each segment's historical quarterly contraction rate "
    "(share of active accounts that contracted in a quarter, last four quarters before "
    "the forecast date); there is no contraction model."
)
SHOCK_NOTE = (
    "Accounts do not churn or expand independently: each Monte Carlo scenario shifts every "
    "account's churn and expansion log-odds together by a normal draw whose spread is how "
    "much past quarterly rates moved beyond sampling noise (last eight quarters)."
)


@dataclass(frozen=True)
class ForecastTables:
    """Everything the forecast part of the report shows, as tidy frames."""

    as_of: pd.Timestamp
    quarter: str
    draws: int
    seed: int
    accounts: pd.DataFrame  # per account inputs and expectations
    summary: pd.DataFrame  # group, metric, mean, p10, p50, p90 (next quarter)
    fan: pd.DataFrame  # quarter, quarter_label, group, metric, mean, p10, p50, p90
    top_at_risk: pd.DataFrame
    top_expansion: pd.DataFrame
    health_bands: pd.DataFrame
    contraction_rates: pd.DataFrame
    shock: RateShock = RateShock()

    def value(self, metric: str, column: str = "p50", group: str = POOLED) -> float:
        """One figure of the next-quarter summary, e.g. value('nrr', 'p10')."""
        rows = self.summary[(self.summary["group"] == group) & (self.summary["metric"] == metric)]
        if rows.empty:
            raise KeyError(f"no forecast for group {group!r} and metric {metric!r}")
        return float(rows[column].iloc[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content of forecast.json."""
        return {
            "as_of": self.as_of.isoformat(),
            "quarter": self.quarter,
            "draws": self.draws,
            "seed": self.seed,
            "scope": NEW_LOGO_NOTE,
            "contraction_probability": CONTRACTION_NOTE,
            "summary": records(self.summary),
            "fan": records(self.fan),
            "top_at_risk": records(self.top_at_risk),
            "top_expansion": records(self.top_expansion),
            "health_bands": records(self.health_bands),
            "contraction_rates": records(self.contraction_rates),
            "common_shock": {
                "churn_log_odds_sigma": self.shock.churn_sigma,
                "expansion_log_odds_sigma": self.shock.expand_sigma,
                "scenarios": self.shock.scenarios,
                "note": SHOCK_NOTE,
            },
        }


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as JSON-safe dicts (timestamps ISO, NaN as null)."""
    text = frame.to_json(orient="records", date_format="iso", double_precision=10)
    out: list[dict[str, Any]] = json.loads(text)
    return out


_TOP_COLUMNS = (
    "account_id",
    "name",  # accounts.name and accounts.csm_owner, when the book carries them
    "csm_owner",
    "segment",
    "plan",
    "arr",
    "churn_probability",
    "expansion_probability",
    "health_score",
    "health_band",
)


def top_accounts(accounts: pd.DataFrame, *, by: str, n: int = 10) -> pd.DataFrame:
    """The n accounts with the largest `by`, ties broken by ARR then account_id."""
    cols = [c for c in (*_TOP_COLUMNS, "arr_at_risk", "expected_expansion_arr") if c in accounts]
    ordered = accounts.sort_values(
        [by, "arr", "account_id"], ascending=[False, False, True], kind="stable"
    )
    return ordered.loc[:, cols].head(n).reset_index(drop=True)


def health_band_distribution(accounts: pd.DataFrame) -> pd.DataFrame:
    """Accounts, ARR, share of ARR and mean churn probability per health band."""
    columns = ["health_band", "accounts", "arr", "arr_share", "mean_churn_probability"]
    if "health_band" not in accounts.columns:
        return pd.DataFrame(columns=columns)
    band = accounts["health_band"].astype("string").fillna(UNKNOWN)
    g = accounts.assign(health_band=band).groupby("health_band")
    out = g.agg(
        accounts=("account_id", "size"),
        arr=("arr", "sum"),
        mean_churn_probability=("churn_probability", "mean"),
    ).reset_index()
    out["arr_share"] = out["arr"] / float(accounts["arr"].sum())
    known = {b: i for i, b in enumerate(HEALTH_BAND_ORDER)}
    out["_order"] = [known.get(str(b), len(known)) for b in out["health_band"]]
    out = out.sort_values(["_order", "health_band"]).reset_index(drop=True)
    return out.loc[:, columns]


def build_forecast(
    book: pd.DataFrame,
    *,
    amount_model: AmountModel,
    rates: pd.DataFrame,
    as_of: pd.Timestamp,
    draws: int = 10_000,
    seed: int,
    quarters: int = 4,
    top_n: int = 10,
    workers: int = 1,
    shock: RateShock | None = None,
    renewal: Renewal | None = None,
) -> ForecastTables:
    """Monte Carlo of the next quarter and a `quarters` fan, pooled and by segment.

    `book` holds BOOK_COLUMNS (optionally health_score, health_band) for accounts with
    ARR > 0 at as_of; probabilities are over the next 90 days. With `renewal` the fan's
    later quarters move each probability back toward its segment's rate (see
    `models.revenue.forecast_book.Renewal`); without it they reuse the first quarter's.
    """
    if draws < 100:
        raise ValueError(f"draws must be >= 100 for stable quantiles, got {draws}")
    accounts = account_expectations(book, amount_model=amount_model, rates=rates)
    inputs = simulation_inputs(accounts)
    shock = shock or RateShock()
    result = simulate_outcomes(
        **inputs, draws=draws, seed=seed, quantiles=QUANTILES, workers=workers, shock=shock
    )
    fan_inputs = dict(inputs)
    if renewal is not None:
        fan_inputs.update(renewal.probabilities(accounts, quarters))
    fan = simulate_fan(
        **fan_inputs,
        quarters=quarters,
        draws=draws,
        seed=seed + 1,
        quantiles=QUANTILES,
        workers=workers,
        shock=shock,
    ).summary
    first = quarter_start(quarter_of(as_of))
    labels = {q: quarter_of(first + pd.DateOffset(months=3 * q)) for q in range(1, quarters + 1)}
    if as_of == first:  # at a quarter start the first horizon is this very quarter
        labels = {q: quarter_of(first + pd.DateOffset(months=3 * (q - 1))) for q in labels}
    fan = fan.assign(quarter_label=fan["quarter"].map(labels).astype("string"))
    return ForecastTables(
        as_of=as_of,
        quarter=labels[1],
        draws=draws,
        seed=seed,
        accounts=accounts,
        summary=result.summary,
        fan=fan,
        top_at_risk=top_accounts(accounts, by="arr_at_risk", n=top_n),
        top_expansion=top_accounts(accounts, by="expected_expansion_arr", n=top_n),
        health_bands=health_band_distribution(accounts),
        contraction_rates=rates,
        shock=shock,
    )


@dataclass(frozen=True)
class NrrTables:
    """NRR history: bridges by month and quarter, quarterly splits, cohorts."""

    data_end: pd.Timestamp
    monthly: pd.DataFrame
    quarterly: pd.DataFrame
    by_split: Mapping[str, pd.DataFrame]  # split name -> quarterly decomposition
    cohort_heatmap: pd.DataFrame
    # Ranked cohorts by trailing NRR; `below_min_size` marks cohorts with fewer than
    # `min_cohort_accounts` accounts at the window start: shown greyed, never ranked first.
    best_cohorts: pd.DataFrame
    worst_cohorts: pd.DataFrame
    min_cohort_accounts: int = MIN_COHORT_ACCOUNTS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content of nrr.json."""
        return {
            "data_end": self.data_end.isoformat(),
            "scope": NEW_LOGO_NOTE,
            "monthly": records(self.monthly),
            "quarterly": records(self.quarterly),
            "by_split": {k: records(v) for k, v in self.by_split.items()},
            "cohort_heatmap": records(self.cohort_heatmap),
            "best_cohorts": records(self.best_cohorts),
            "worst_cohorts": records(self.worst_cohorts),
            "min_cohort_accounts": self.min_cohort_accounts,
        }


def cohort_extremes(
    ranked: pd.DataFrame, *, min_accounts: int, n: int = 3
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Best and worst cohorts of a ranking, each with `below_min_size`.

    The n best and n worst cohorts of at least `min_accounts` starting accounts are listed;
    smaller cohorts that would rank among them (at most n per table) are kept, flagged, so
    the report can grey them instead of hiding them.
    """
    small = ranked["starting_logos"] < min_accounts
    table = ranked.assign(below_min_size=small).sort_values(
        ["nrr", "starting_arr"], ascending=[False, False], kind="stable"
    )
    eligible = table[~table["below_min_size"]]
    best_ok = eligible.head(n)
    worst_ok = eligible.iloc[len(best_ok) :].sort_values("nrr", kind="stable").head(n)

    def around(chosen: pd.DataFrame, *, best: bool) -> pd.DataFrame:
        tiny = table[table["below_min_size"]]
        if not chosen.empty:
            edge = float(chosen["nrr"].min() if best else chosen["nrr"].max())
            tiny = tiny[tiny["nrr"] >= edge] if best else tiny[tiny["nrr"] <= edge]
        tiny = (tiny if best else tiny.iloc[::-1]).head(n)
        out = pd.concat([chosen, tiny]).sort_values("nrr", ascending=not best, kind="stable")
        return out.reset_index(drop=True)

    return around(best_ok, best=True), around(worst_ok, best=False)


def build_nrr_tables(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    grace_days: int = 30,
    min_cohort_accounts: int = MIN_COHORT_ACCOUNTS,
) -> NrrTables:
    """Every NRR history table of the report from the subscriptions and accounts.

    Cohorts of fewer than `min_cohort_accounts` accounts are flagged, not ranked
    (experiments/rules.yaml `revenue.min_cohort_accounts`).
    """
    common: dict[str, Any] = {"data_end": data_end, "grace_days": grace_days}
    splits = available_splits(accounts)
    by_split = {
        split: decompose(subscriptions, accounts, freq="quarter", by=split, **common)
        for split in splits
    }
    has_created = "cohort" in splits
    heat = cohort_heatmap(subscriptions, accounts, **common) if has_created else pd.DataFrame()
    # every cohort with starting ARR; the minimum size is applied (as a flag) below
    extremes = best_and_worst_cohorts(subscriptions, accounts, min_logos=1, **common)
    # without any cohort split the ranking is one pooled row, not cohorts
    best, worst = pd.DataFrame(), pd.DataFrame()
    if "group" in extremes.ranked.columns:
        best, worst = cohort_extremes(extremes.ranked, min_accounts=min_cohort_accounts)
    return NrrTables(
        data_end=data_end,
        monthly=decompose(subscriptions, accounts, freq="month", **common),
        quarterly=decompose(subscriptions, accounts, freq="quarter", **common),
        by_split=by_split,
        cohort_heatmap=heat,
        best_cohorts=best,
        worst_cohorts=worst,
        min_cohort_accounts=min_cohort_accounts,
    )
