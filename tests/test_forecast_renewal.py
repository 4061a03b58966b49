"""The fan's later quarters renew each account's probabilities toward its segment's rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.revenue.forecast import simulate_fan
from models.revenue.forecast_book import Renewal


def _renewal(covariance: float) -> Renewal:
    rates = pd.DataFrame(
        {
            "segment": ["All", "SMB"],
            "starts": [100, 100],
            "churn_rate": [0.05, 0.05],
            "expansion_rate": [0.15, 0.15],
        }
    )
    repeats = pd.DataFrame(
        {
            "lag": [1, 2],
            "pairs": [500, 400],
            "first_rate": [0.15, 0.15],
            "later_rate": [0.15, 0.15],
            "covariance": [0.0, covariance],
        }
    )
    return Renewal(rates, repeats)


def _book(n: int = 400) -> pd.DataFrame:
    high = np.arange(n) < n // 4
    return pd.DataFrame(
        {
            "segment": ["SMB"] * n,
            "churn_probability": np.where(high, 0.01, 0.0633),
            "expansion_probability": np.where(high, 0.6, 0.0),
        }
    )


def test_later_quarters_move_toward_the_segment_rate_by_the_measured_persistence() -> None:
    book = _book()
    var = float(np.var(book["expansion_probability"]))
    renewal = _renewal(covariance=0.5 * var)
    assert renewal.weights(book["expansion_probability"].to_numpy(), 4) == pytest.approx(
        [0.0, 0.5, 0.5]  # lag 3 is not measured: the longest measured lag holds
    )
    probs = renewal.probabilities(book, 4)
    p = probs["p_expand"]
    assert p.shape == (len(book), 4)
    assert np.allclose(p[:, 0], book["expansion_probability"])
    assert np.allclose(p[:, 1], 0.15)
    assert np.allclose(p[:, 2], 0.15 + 0.5 * (book["expansion_probability"] - 0.15))
    assert np.allclose(probs["p_churn"][:, 1], 0.05)


def test_renewed_fan_stops_climbing_where_reused_probabilities_compound() -> None:
    book = _book()
    n = len(book)
    common = {
        "arr": np.full(n, 10_000.0),
        "p_contract": np.zeros(n),
        "expand_mu": np.full(n, 0.4),
        "expand_sigma": np.full(n, 0.2),
        "contract_mu": np.full(n, -0.3),
        "contract_sigma": np.full(n, 0.1),
        "quarters": 4,
        "draws": 500,
        "seed": 3,
    }
    plain = simulate_fan(
        **common,
        p_churn=book["churn_probability"].to_numpy(),
        p_expand=book["expansion_probability"].to_numpy(),
    ).summary
    renewed = simulate_fan(**common, **_renewal(0.0).probabilities(book, 4)).summary

    def quarterly(summary: pd.DataFrame) -> np.ndarray:
        rows = summary[(summary["group"] == "All") & (summary["metric"] == "quarter_nrr")]
        return rows.sort_values("quarter")["p50"].to_numpy()

    # reused: the likely expanders expand every quarter on ARR their expansions grew
    assert quarterly(plain)[3] > quarterly(plain)[0] + 0.02
    # renewed: the book's expansion share holds at the segment rate after quarter 1
    assert abs(quarterly(renewed)[3] - quarterly(renewed)[1]) < 0.01


# --- the rates' trend (issue 14 part 4: the 4-quarter fan lagged rising rates) ----------


def test_trend_moves_each_later_quarter_by_the_damped_slope_in_arr_weighted_terms() -> None:
    from models.revenue.forecast_book import RateTrend

    book = _book().assign(arr=np.linspace(1_000.0, 50_000.0, 400))
    trend = RateTrend(churn_slope=-0.004, expansion_slope=0.01, windows=8, damping=0.5)
    base = _renewal(0.5 * float(np.var(book["expansion_probability"])))
    plain = Renewal(base.rates, base.repeats).probabilities(book, 4)
    moved = Renewal(base.rates, base.repeats, trend).probabilities(book, 4)
    w = book["arr"].to_numpy()
    # quarter 1 is the scored quarter; quarter k moves by slope x (0.5 + ... + 0.5^(k-1))
    for name, slope in (("p_expand", 0.01), ("p_churn", -0.004)):
        np.testing.assert_allclose(moved[name][:, 0], plain[name][:, 0])
        for k, damped in ((2, 0.5), (3, 0.75), (4, 0.875)):
            before = np.average(plain[name][:, k - 1], weights=w)
            after = np.average(moved[name][:, k - 1], weights=w)
            assert after - before == pytest.approx(slope * damped, abs=1e-9)
            # one log-odds shift: every account keeps its order
            order = np.argsort(plain[name][:, k - 1], kind="stable")
            assert np.all(np.diff(moved[name][order, k - 1]) >= -1e-12)


def _trend_history(churns: list[int], expansions: list[int]) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Accounts of ARR 1,000 from long before; in window i, churns[i] of them end for good
    and expansions[i] others grow to 1,500 mid-window (each account changes once at most)."""
    as_of = pd.Timestamp("2026-01-01")
    starts = [as_of - pd.DateOffset(months=3 * (len(churns) - i)) for i in range(len(churns))]
    rows, n = [], 0
    for i, (c, e) in enumerate(zip(churns, expansions, strict=True)):
        middle = starts[i] + pd.Timedelta(days=40)
        for _ in range(c):
            rows.append((f"a{n}", pd.Timestamp("2020-01-01"), middle, 1_000.0))
            n += 1
        for _ in range(e):
            rows.append((f"a{n}", pd.Timestamp("2020-01-01"), middle, 1_000.0))
            rows.append((f"a{n}", middle, pd.NaT, 1_500.0))
            n += 1
    for _ in range(300):
        rows.append((f"a{n}", pd.Timestamp("2020-01-01"), pd.NaT, 1_000.0))
        n += 1
    subs = pd.DataFrame(rows, columns=["account_id", "start_at", "end_at", "arr"])
    return subs.assign(plan="Pro"), as_of


def _shrunk_by_hand(rates: list[float]) -> float:
    """OLS slope b = Sxy / Sxx, its variance s^2 / Sxx, kept in the share t^2 / (1 + t^2)."""
    x = np.arange(len(rates), dtype=float)
    y = np.asarray(rates)
    sxx = float(((x - x.mean()) ** 2).sum())
    b = float(((x - x.mean()) * (y - y.mean())).sum()) / sxx
    residual = y - y.mean() - b * (x - x.mean())
    t2 = b**2 / (float((residual**2).sum()) / (len(rates) - 2) / sxx)
    return b * t2 / (1 + t2)


def test_rate_trend_is_the_shrunk_least_squares_slope_of_the_quarterly_arr_rates() -> None:
    from models.revenue.forecast_book import rate_trend

    churns, expansions = [2, 3, 4, 5, 6, 7, 8, 9], [12, 11, 9, 8, 8, 6, 5, 3]
    subs, as_of = _trend_history(churns, expansions)
    accounts = pd.DataFrame({"account_id": subs["account_id"].unique(), "segment": "SMB"})
    # the rates by bookkeeping: ARR at each window start, churned and expanded ARR shares
    alive, grown, churn_rate, expansion_rate = len(accounts), 0, [], []
    for c, e in zip(churns, expansions, strict=True):
        start_arr = 1_000.0 * (alive - grown) + 1_500.0 * grown
        churn_rate.append(1_000.0 * c / start_arr)
        expansion_rate.append(1_000.0 * e / start_arr)
        alive, grown = alive - c, grown + e
    trend = rate_trend(subs, accounts, as_of=as_of)
    assert trend.windows == 8
    assert trend.churn_slope == pytest.approx(_shrunk_by_hand(churn_rate), rel=1e-9)
    assert trend.expansion_slope == pytest.approx(_shrunk_by_hand(expansion_rate), rel=1e-9)
    assert trend.churn_slope > 0 > trend.expansion_slope
    # three windows of history: no trend
    short = rate_trend(subs, accounts, as_of=as_of, windows=3)
    assert (short.churn_slope, short.expansion_slope, short.windows) == (0.0, 0.0, 3)
