"""The forecast book: accounts with ARR at a forecast date, their probabilities and amounts.

Shared by the serving forecast and the training backtest. Everything is computed from the
subscriptions known at the forecast date (later periods are ignored, current ones are open).
There is no contraction-probability model: each account's p_contract is its segment's
historical quarterly contraction rate before the forecast date.

Quarters after the first (`Renewal`): the scored probabilities describe the next 90 days.
An account's state moves on after that: an expansion uses up the headroom that made it
likely (seats are bought ahead of demand), a renewal passed is a risk gone, and a quiet
account's risk comes back when its next renewal nears. Reusing the first quarter's
probabilities for every quarter of the fan made the accounts most likely to expand expand
nearly every quarter, on ARR their last expansion had grown, and took the riskiest accounts
out of the book in quarter 1 for good: measured on the demo company from 2025Q4 with the
simulator's true probabilities, the ARR expansion rate climbed 8.8% -> 15.2% per quarter
and the churn rate fell 2.7% -> 1.8%, while the same book's actual rates held near 9% and
3.5%. Quarter q's probability is therefore its segment's recent rate plus w(q-1) times the
account's quarter-1 deviation from it, w(k) being how much of an account's expansion
probability still shows k quarters later, measured on the history as the covariance of
expansion in a quarter and k quarters later over the variance of the scored probabilities.
Those recent rates are a trailing average; `RateTrend` moves later quarters along the
rates' damped, shrunk trend (docs/DOMAIN.md, "The rates' trend", has the backtest figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, log_ndtr, logit

from models.revenue.amounts import AmountModel, arr_change_events, fit_amount_model
from models.revenue.forecast import POOLED, RateShock, exclusive_probabilities
from models.revenue.nrr import UNKNOWN, account_flows, arr_at, arr_timeline

_TS = "datetime64[ns]"
BOOK_COLUMNS: tuple[str, ...] = (
    "account_id",
    "arr",
    "segment",
    "plan",
    "churn_probability",
    "expansion_probability",
)


def quarter_of(ts: pd.Timestamp) -> str:
    """Calendar quarter label '2026Q1' of a timestamp."""
    return f"{ts.year}Q{ts.quarter}"


def quarter_start(label: str) -> pd.Timestamp:
    """First day of a quarter given as '2026Q1'."""
    text = label.strip().upper()
    if len(text) != 6 or text[4] != "Q" or not text[:4].isdigit() or text[5] not in "1234":
        raise ValueError(f"quarter must look like 2026Q1, got {label!r}")
    return pd.Timestamp(year=int(text[:4]), month=3 * (int(text[5]) - 1) + 1, day=1)


def subscriptions_known_at(subscriptions: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """The subscription history as it stood at as_of: later periods dropped, current ones open."""
    starts = subscriptions["start_at"]
    known = subscriptions.loc[starts < as_of]
    # an end after as_of was not yet a fact at as_of: the period is simply current
    return known.assign(end_at=known["end_at"].where(known["end_at"] <= as_of))


def _segments(accounts: pd.DataFrame) -> pd.DataFrame:
    seg = accounts["segment"] if "segment" in accounts.columns else pd.NA
    frame = pd.DataFrame({"account_id": accounts["account_id"].astype("string"), "segment": seg})
    frame["segment"] = frame["segment"].astype("string").fillna(UNKNOWN)
    return frame.drop_duplicates("account_id")


def book_at(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    grace_days: int = 30,
) -> pd.DataFrame:
    """Accounts active at as_of (`features.active`, the definition scoring and the API share)
    with their ARR > 0 as known then: account_id, arr, plan, segment."""
    from features.active import active_accounts

    known = subscriptions_known_at(subscriptions, as_of=as_of)
    timeline = arr_timeline(known, data_end=as_of, grace_days=grace_days)
    ids = timeline["account_id"].unique()
    points = pd.DataFrame({"account_id": ids, "at": pd.Series([as_of] * len(ids), dtype=_TS)})
    state = arr_at(timeline, points)
    active = active_accounts(subscriptions, as_of=as_of)
    state = state[(state["arr"] > 0) & state["account_id"].astype("string").isin(active)]
    book = pd.DataFrame(
        {
            "account_id": state["account_id"].astype("string").to_numpy(),
            "arr": state["arr"].to_numpy(dtype=float),
            "plan": state["plan"].astype("string").fillna(UNKNOWN).to_numpy(),
        }
    )
    book = book.merge(_segments(accounts), on="account_id", how="left")
    book["segment"] = book["segment"].astype("string").fillna(UNKNOWN)
    return book.sort_values("account_id").reset_index(drop=True)


def _quarterly_flows(
    subscriptions: pd.DataFrame, *, as_of: pd.Timestamp, quarters: int, grace_days: int
) -> pd.DataFrame | None:
    """Flows of accounts active at each of the last `quarters` 3-month windows before as_of.

    None when the history known at as_of covers less than one whole window.
    """
    known = subscriptions_known_at(subscriptions, as_of=as_of)
    timeline = arr_timeline(known, data_end=as_of, grace_days=grace_days)
    if timeline.empty:
        return None
    first = timeline["start_at"].min()
    bounds = [as_of - pd.DateOffset(months=3 * k) for k in range(quarters, -1, -1)]
    bounds = [b for b in bounds if b >= first]
    if len(bounds) < 2:
        return None
    flows = account_flows(timeline, boundaries=bounds)
    return flows[flows["arr_start"] > 0]


def contraction_rates(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    quarters: int = 4,
    grace_days: int = 30,
    prior_accounts: float = 20.0,
) -> pd.DataFrame:
    """Per segment and pooled ('All'): share of active accounts that contracted in a quarter.

    Measured over the last `quarters` complete 3-month windows ending at as_of; segments
    with little history are shrunk toward the pooled rate (prior of `prior_accounts`).
    Columns: segment, starts, contractions, rate.
    """
    if quarters < 1:
        raise ValueError(f"quarters must be >= 1, got {quarters}")
    columns = ["segment", "starts", "contractions", "rate"]
    flows = _quarterly_flows(subscriptions, as_of=as_of, quarters=quarters, grace_days=grace_days)
    if flows is None:
        return pd.DataFrame([{"segment": POOLED, "starts": 0, "contractions": 0, "rate": 0.0}])
    flows = flows.merge(_segments(accounts), on="account_id", how="left")
    flows["segment"] = flows["segment"].astype("string").fillna(UNKNOWN)
    flows["contracted"] = (flows["contraction_arr"] > 0) & (flows["churned_arr"] == 0)
    per = flows.groupby("segment")["contracted"].agg(["size", "sum"]).reset_index()
    pooled_rate = float(flows["contracted"].mean())
    rows = [
        {"segment": POOLED, "starts": len(flows), "contractions": int(flows["contracted"].sum())}
    ]
    rows[0]["rate"] = pooled_rate
    for segment, size, count in per.itertuples(index=False):
        rate = (float(count) + prior_accounts * pooled_rate) / (float(size) + prior_accounts)
        rows.append({"segment": str(segment), "starts": int(size), "contractions": int(count)})
        rows[-1]["rate"] = rate
    return pd.DataFrame(rows, columns=columns)


def _excess_sigma(events: np.ndarray, starts: np.ndarray) -> float:
    """Spread of quarter-to-quarter log-odds changes beyond what binomial noise explains."""
    rate = (events + 0.5) / (starts + 1.0)
    log_odds = np.log(rate / (1.0 - rate))
    noise = 1.0 / ((starts + 1.0) * rate * (1.0 - rate))  # sampling variance of each log-odds
    diffs = np.diff(log_odds)
    # a change between independent quarters has variance 2 sigma^2 + both sampling variances
    excess = (float(np.mean(diffs**2)) - float(np.mean(noise[1:] + noise[:-1]))) / 2.0
    return float(np.sqrt(max(excess, 0.0)))


def rate_shock(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    quarters: int = 8,
    grace_days: int = 30,
    scenarios: int = 20,
    max_sigma: float = 1.0,
) -> RateShock:
    """How much churn and expansion rates of the whole book moved together, quarter to quarter.

    Measured on the last `quarters` complete 3-month windows before as_of (known then):
    the logo churn and expansion rates' log-odds changes, minus binomial noise. Fewer than
    three windows give no estimate (sigma 0: independent accounts, the narrowest interval).
    """
    if quarters < 3:
        raise ValueError(f"quarters must be >= 3 to measure a spread, got {quarters}")
    flows = _quarterly_flows(subscriptions, as_of=as_of, quarters=quarters, grace_days=grace_days)
    if flows is None or flows["period_start"].nunique() < 3:
        return RateShock(scenarios=scenarios)
    per = (
        flows.assign(
            churned=flows["churned_arr"] > 0,
            expanded=(flows["expansion_arr"] > 0) & (flows["churned_arr"] == 0),
        )
        .groupby("period_start")[["churned", "expanded"]]
        .agg(["sum", "size"])
    )
    starts = per[("churned", "size")].to_numpy(dtype=float)
    sigmas = {
        kind: min(_excess_sigma(per[(kind, "sum")].to_numpy(dtype=float), starts), max_sigma)
        for kind in ("churned", "expanded")
    }
    return RateShock(
        churn_sigma=sigmas["churned"], expand_sigma=sigmas["expanded"], scenarios=scenarios
    )


def contraction_probability(segments: pd.Series, rates: pd.DataFrame) -> np.ndarray:
    """Per account: its segment's contraction rate, the pooled rate for unseen segments."""
    lookup = dict(zip(rates["segment"].astype(str), rates["rate"].astype(float), strict=True))
    pooled = lookup.get(POOLED, 0.0)
    return np.array([lookup.get(str(s), pooled) for s in segments], dtype=float)


def _truncated_exp_mean(mu: np.ndarray, sigma: np.ndarray, sign: float) -> np.ndarray:
    """E[exp(X)] for X ~ N(mu, sigma) truncated to sign * X > 0."""
    safe = np.where(sigma > 0, sigma, 1.0)
    log_ratio = (
        mu + sigma**2 / 2 + log_ndtr(sign * (mu + sigma**2) / safe) - log_ndtr(sign * mu / safe)
    )
    return np.asarray(np.where(sigma > 0, np.exp(log_ratio), np.exp(mu)), dtype=float)


def _check_book(book: pd.DataFrame) -> None:
    missing = [c for c in BOOK_COLUMNS if c not in book.columns]
    if missing:
        raise ValueError(f"forecast book is missing column(s) {missing}")
    if book.empty:
        raise ValueError("forecast book is empty: no account has ARR at the forecast date")
    if book["account_id"].duplicated().any():
        raise ValueError("forecast book has duplicate account_id rows")
    for col in ("arr", "churn_probability", "expansion_probability"):
        values = pd.to_numeric(book[col], errors="raise").to_numpy(dtype=float)
        if not np.isfinite(values).all():
            raise ValueError(f"forecast book column {col} has missing or non-finite values")
        if col != "arr" and ((values < 0) | (values > 1)).any():
            raise ValueError(f"forecast book column {col} must lie in [0, 1]")
    if (book["arr"].to_numpy(dtype=float) <= 0).any():
        raise ValueError("forecast book column arr must be > 0 for every account")


def account_expectations(
    book: pd.DataFrame, *, amount_model: AmountModel, rates: pd.DataFrame
) -> pd.DataFrame:
    """Book plus p_contract, amount parameters, expected expansion and ARR at risk per account."""
    _check_book(book)
    out = book.reset_index(drop=True).copy()
    out["contraction_probability"] = contraction_probability(out["segment"], rates)
    params = amount_model.predict_params(out.loc[:, ["segment", "plan"]])
    out = pd.concat([out, params.reset_index(drop=True)], axis=1)
    arr = out["arr"].to_numpy(dtype=float)
    pc, pe, pk = exclusive_probabilities(
        out["churn_probability"].to_numpy(dtype=float),
        out["expansion_probability"].to_numpy(dtype=float),
        out["contraction_probability"].to_numpy(dtype=float),
    )
    gain = _truncated_exp_mean(out["expand_mu"].to_numpy(), out["expand_sigma"].to_numpy(), 1.0)
    keep = _truncated_exp_mean(
        out["contract_mu"].to_numpy(), out["contract_sigma"].to_numpy(), -1.0
    )
    out["expected_expansion_arr"] = arr * pe * (gain - 1.0)
    out["expected_contraction_arr"] = arr * pk * (1.0 - keep)
    out["expected_churned_arr"] = arr * pc
    out["arr_at_risk"] = out["expected_churned_arr"] + out["expected_contraction_arr"]
    return out


def simulation_inputs(accounts: pd.DataFrame) -> dict[str, Any]:
    """Keyword arguments of simulate_outcomes / simulate_fan for an expectations frame."""
    return {
        "arr": accounts["arr"].to_numpy(dtype=float),
        "p_churn": accounts["churn_probability"].to_numpy(dtype=float),
        "p_expand": accounts["expansion_probability"].to_numpy(dtype=float),
        "p_contract": accounts["contraction_probability"].to_numpy(dtype=float),
        "expand_mu": accounts["expand_mu"].to_numpy(dtype=float),
        "expand_sigma": accounts["expand_sigma"].to_numpy(dtype=float),
        "contract_mu": accounts["contract_mu"].to_numpy(dtype=float),
        "contract_sigma": accounts["contract_sigma"].to_numpy(dtype=float),
        "groups": accounts["segment"].astype(str).to_numpy(dtype=object),
    }


RENEWAL_LAGS = 3  # quarters after the first that a 4-quarter fan needs


def _with_segments(flows: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    out = flows.merge(_segments(accounts), on="account_id", how="left")
    out["segment"] = out["segment"].astype("string").fillna(UNKNOWN)
    out["churned"] = out["churned_arr"] > 0
    out["expanded"] = (out["expansion_arr"] > 0) & ~out["churned"]
    return out


def event_rates(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    quarters: int = 4,
    grace_days: int = 30,
    prior_accounts: float = 20.0,
) -> pd.DataFrame:
    """Per segment and pooled ('All'): quarterly churn and expansion rates, ARR-weighted.

    The share of starting ARR in accounts that churned (expanded) in a quarter, over the
    last `quarters` 3-month windows before as_of: NRR counts ARR, and larger accounts churn
    and expand at other rates than small ones. Segments are shrunk toward the pooled rate
    as in `contraction_rates`. Columns: segment, starts, churn_rate, expansion_rate. No
    history: one pooled row with NaN rates.
    """
    columns = ["segment", "starts", "churn_rate", "expansion_rate"]
    flows = _quarterly_flows(subscriptions, as_of=as_of, quarters=quarters, grace_days=grace_days)
    if flows is None or flows.empty:
        return pd.DataFrame([[POOLED, 0, np.nan, np.nan]], columns=columns)
    flows = _with_segments(flows, accounts)

    def rates(part: pd.DataFrame) -> list[float]:
        weight = part["arr_start"].to_numpy(dtype=float)
        return [float(np.average(part[k], weights=weight)) for k in ("churned", "expanded")]

    pooled = rates(flows)
    rows = [[POOLED, len(flows), *pooled]]
    for segment, part in flows.groupby("segment"):
        size = float(len(part))
        shrunk = [
            (size * r + prior_accounts * q) / (size + prior_accounts)
            for r, q in zip(rates(part), pooled, strict=True)
        ]
        rows.append([str(segment), len(part), *shrunk])
    return pd.DataFrame(rows, columns=columns)


def expansion_repeats(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    quarters: int = 8,
    lags: int = RENEWAL_LAGS,
    grace_days: int = 30,
) -> pd.DataFrame:
    """How expansion in one quarter goes with expansion k quarters later (k = 1..lags).

    Over the last `quarters` 3-month windows before as_of, pairs of windows k apart with the
    account active at both starts: pairs, first_rate (expanded in the first window),
    later_rate (expanded k windows later) and covariance of the two indicators. A lag
    without pairs is left out.
    """
    columns = ["lag", "pairs", "first_rate", "later_rate", "covariance"]
    flows = _quarterly_flows(subscriptions, as_of=as_of, quarters=quarters, grace_days=grace_days)
    if flows is None or flows.empty:
        return pd.DataFrame(columns=columns)
    flows = _with_segments(flows, accounts)
    wide = flows.pivot_table(
        index="account_id", columns="period_start", values="expanded", aggfunc="first"
    ).sort_index(axis=1)
    rows = []
    for lag in range(1, lags + 1):
        first, later = [], []
        for i in range(wide.shape[1] - lag):
            both = wide.iloc[:, [i, i + lag]].dropna()
            first.append(both.iloc[:, 0].to_numpy(dtype=float))
            later.append(both.iloc[:, 1].to_numpy(dtype=float))
        if not first or sum(a.size for a in first) < 2:
            continue
        a, b = np.concatenate(first), np.concatenate(later)
        cov = float(np.mean(a * b) - a.mean() * b.mean())
        rows.append([lag, int(a.size), float(a.mean()), float(b.mean()), cov])
    return pd.DataFrame(rows, columns=columns)


TREND_WINDOWS = 8  # quarterly windows before the forecast date the trend is fitted on
MIN_TREND_WINDOWS = 4  # fewer: no trend (a line through 2-3 noisy rates is mostly noise)
TREND_DAMPING = 0.8  # share of the slope still added each quarter further out


@dataclass(frozen=True)
class RateTrend:
    """How the book's quarterly churn and expansion rates (ARR-weighted) have been moving.

    Slopes per quarter of a least-squares line through the last `TREND_WINDOWS` quarterly
    rates, shrunk by their signal-to-noise (`_shrunk_slope`); later quarters of the fan move
    by a damped share of it (quarter 1 is the scored quarter: the models already see the
    current level). No trend below `MIN_TREND_WINDOWS` windows.
    """

    churn_slope: float = 0.0
    expansion_slope: float = 0.0
    windows: int = 0
    damping: float = TREND_DAMPING

    def delta(self, rate: str, quarter: int) -> float:
        """Change of `rate` ('churn_rate' / 'expansion_rate') by fan quarter `quarter` (1..)."""
        slope = {"churn_rate": self.churn_slope, "expansion_rate": self.expansion_slope}[rate]
        return slope * sum(self.damping**j for j in range(1, quarter))


def rate_trend(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    windows: int = TREND_WINDOWS,
    grace_days: int = 30,
) -> RateTrend:
    """`RateTrend` of the quarterly windows before as_of (the rates of `event_rates`, pooled)."""
    flows = _quarterly_flows(subscriptions, as_of=as_of, quarters=windows, grace_days=grace_days)
    if flows is None or flows.empty:
        return RateTrend()
    flows = _with_segments(flows, accounts)
    rates = [
        [np.average(part[k], weights=part["arr_start"]) for k in ("churned", "expanded")]
        for _, part in flows.groupby("period_start")
        if part["arr_start"].sum() > 0
    ]
    if len(rates) < MIN_TREND_WINDOWS:
        return RateTrend(windows=len(rates))
    values = np.asarray(rates, dtype=float)
    slopes = [_shrunk_slope(values[:, j]) for j in range(2)]
    return RateTrend(slopes[0], slopes[1], windows=len(rates))


def _shrunk_slope(y: np.ndarray) -> float:
    """Least-squares slope x t^2 / (1 + t^2), t its t-statistic.

    A line through a few noisy quarterly rates has a slope even when the rates do not move;
    shrinking by the slope's signal-to-noise keeps a clear trend (t = 3: 90% of it) and
    mostly drops one the windows cannot tell from noise (t = 1: half).
    """
    t = np.arange(y.size, dtype=float)
    slope, intercept = np.polyfit(t, y, 1)
    residual = y - (slope * t + intercept)
    spread = float(np.sum((t - t.mean()) ** 2))
    variance = float(np.sum(residual**2)) / (y.size - 2) / spread
    if variance <= 0.0:
        return float(slope)
    signal = float(slope) ** 2 / variance
    return float(slope) * signal / (1.0 + signal)


def shift_weighted_mean(p: np.ndarray, weights: np.ndarray, delta: float) -> np.ndarray:
    """p moved by one common log-odds shift so that its weighted mean moves by `delta`.

    The target mean is kept inside (0.0001, 0.999); every account keeps its rank.
    """
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    w = np.asarray(weights, dtype=float)
    if delta == 0.0 or w.sum() <= 0:
        return p
    mean = float(np.average(p, weights=w))
    target = float(np.clip(mean + delta, 1e-4, 0.999))

    def gap(shift: float) -> float:
        return float(np.average(expit(logit(p) + shift), weights=w)) - target

    return np.asarray(expit(logit(p) + brentq(gap, -20.0, 20.0)), dtype=float)


@dataclass(frozen=True)
class Renewal:
    """Probabilities of the quarters after the first: back toward the segment's rate.

    Quarter 1 keeps the scored probabilities; quarter 1 + k uses
    segment rate + w(k) * (scored - segment rate), churn and expansion alike (churn leaves the
    book, so its persistence cannot be measured on repeats; it is taken to be expansion's).
    w(k) = covariance of expansion indicators k quarters apart / variance of the book's
    expansion probabilities, in [0, 1]: what a book of these probabilities needs to repeat
    expansions as often as the history did. Lags beyond the history use the longest one
    measured; no history at all keeps the scored probabilities (w = 1, rates unknown).
    With a `trend`, quarter k's probabilities then move by one log-odds shift so that their
    ARR-weighted mean moves by `RateTrend.delta` (the rates above are a trailing average:
    on a book whose rates keep rising or falling they lag, and the lag compounds).
    """

    rates: pd.DataFrame  # event_rates
    repeats: pd.DataFrame  # expansion_repeats
    trend: RateTrend = RateTrend()

    def weights(self, p_expand: np.ndarray, quarters: int) -> list[float]:
        """w(k) for k = 1 .. quarters - 1."""
        if quarters <= 1:
            return []
        var = float(np.var(np.asarray(p_expand, dtype=float)))
        measured = {
            int(lag): float(np.clip(cov / var, 0.0, 1.0)) if var > 1e-12 else 1.0
            for lag, cov in zip(self.repeats["lag"], self.repeats["covariance"], strict=True)
        }
        out, last = [], 1.0
        for k in range(1, quarters):
            last = measured.get(k, last)
            out.append(last)
        return out

    def probabilities(self, accounts: pd.DataFrame, quarters: int) -> dict[str, np.ndarray]:
        """p_churn and p_expand of shape (n, quarters) for `simulate_fan`."""
        lookup = self.rates.set_index(self.rates["segment"].astype(str))
        pooled = lookup.loc[POOLED] if POOLED in lookup.index else None
        out = {}
        for column, name, rate in (
            ("churn_probability", "p_churn", "churn_rate"),
            ("expansion_probability", "p_expand", "expansion_rate"),
        ):
            p = accounts[column].to_numpy(dtype=float)
            base = np.array(
                [
                    float(lookup.loc[s, rate])
                    if s in lookup.index
                    else float(pooled[rate])
                    if pooled is not None
                    else np.nan
                    for s in accounts["segment"].astype(str)
                ]
            )
            weights = self.weights(
                accounts["expansion_probability"].to_numpy(dtype=float), quarters
            )
            columns = [p]
            for k, w in enumerate(weights, start=2):
                later = np.clip(np.where(np.isfinite(base), base + w * (p - base), p), 0.0, 1.0)
                delta = self.trend.delta(rate, k)
                if delta and "arr" in accounts.columns:
                    later = shift_weighted_mean(later, accounts["arr"].to_numpy(float), delta)
                columns.append(later)
            out[name] = np.column_stack(columns)
        return out


@dataclass(frozen=True)
class BookHistory:
    """What the book's past says at a forecast date: amounts, contraction, shock, renewal."""

    amounts: AmountModel
    rates: pd.DataFrame
    shock: RateShock
    renewal: Renewal | None = None


def history_at(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    grace_days: int = 30,
) -> BookHistory:
    """Everything the forecast learns from history, from the periods known at as_of only."""
    known = subscriptions_known_at(subscriptions, as_of=as_of)
    events = arr_change_events(known, accounts, data_end=as_of, grace_days=grace_days)
    return BookHistory(
        amounts=fit_amount_model(events),
        rates=contraction_rates(subscriptions, accounts, as_of=as_of, grace_days=grace_days),
        shock=rate_shock(subscriptions, accounts, as_of=as_of, grace_days=grace_days),
        renewal=Renewal(
            event_rates(subscriptions, accounts, as_of=as_of, grace_days=grace_days),
            expansion_repeats(subscriptions, accounts, as_of=as_of, grace_days=grace_days),
            rate_trend(subscriptions, accounts, as_of=as_of, grace_days=grace_days),
        ),
    )
