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
