"""Monte Carlo forecast: determinism, exact edge cases, expectations, exclusivity, evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.revenue.forecast import (
    POOLED,
    exclusive_probabilities,
    expected_totals,
    interval_coverage,
    naive_forecast,
    pinball_loss,
    simulate_fan,
    simulate_outcomes,
)


def book(n: int = 300, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for a small synthetic book of accounts."""
    rng = np.random.default_rng(seed)
    kwargs: dict[str, Any] = {
        "arr": rng.lognormal(9, 1, n),
        "p_churn": rng.uniform(0, 0.15, n),
        "p_expand": rng.uniform(0, 0.3, n),
        "p_contract": rng.uniform(0, 0.1, n),
        "expand_mu": rng.uniform(0.05, 0.4, n),
        "expand_sigma": rng.uniform(0.05, 0.4, n),
        "contract_mu": -0.3,
        "contract_sigma": 0.25,
    }
    kwargs.update(overrides)
    return kwargs


def pooled(result: Any, metric: str) -> np.ndarray:
    draws = result.draws
    return draws.loc[draws["group"] == POOLED, metric].to_numpy()


def test_same_seed_same_draws_whatever_the_workers() -> None:
    a = simulate_outcomes(**book(), draws=300, seed=7)
    b = simulate_outcomes(**book(), draws=300, seed=7, workers=2)
    c = simulate_outcomes(**book(), draws=300, seed=8)
    pd.testing.assert_frame_equal(a.draws, b.draws)
    assert not np.array_equal(pooled(a, "ending_arr"), pooled(c, "ending_arr"))


def test_zero_probabilities_change_nothing() -> None:
    kw = book(p_churn=0.0, p_expand=0.0, p_contract=0.0)
    out = simulate_outcomes(**kw, draws=200, seed=1)
    assert (pooled(out, "ending_arr") == pooled(out, "starting_arr")).all()
    np.testing.assert_allclose(pooled(out, "starting_arr"), kw["arr"].sum(), rtol=1e-12)
    assert (pooled(out, "nrr") == 1.0).all() and (pooled(out, "grr") == 1.0).all()


def test_certain_churn_loses_everything_and_beats_expansion() -> None:
    kw = book(p_churn=1.0, p_expand=1.0, p_contract=0.5)
    out = simulate_outcomes(**kw, draws=200, seed=1)
    assert (pooled(out, "churned_arr") == pooled(out, "starting_arr")).all()
    assert (pooled(out, "expansion_arr") == 0).all()
    assert (pooled(out, "ending_arr") == 0).all() and (pooled(out, "nrr") == 0).all()


def test_certain_expansion_and_contraction_with_fixed_size_are_exact() -> None:
    arr = np.array([100.0, 250.0, 1000.0])
    up = simulate_outcomes(
        **book(
            3,
            arr=arr,
            p_churn=0.0,
            p_expand=1.0,
            p_contract=0.0,
            expand_mu=np.log(1.2),
            expand_sigma=0.0,
        ),
        draws=50,
        seed=3,
    )
    np.testing.assert_allclose(pooled(up, "expansion_arr"), 0.2 * arr.sum(), rtol=1e-12)
    down = simulate_outcomes(
        **book(
            3,
            arr=arr,
            p_churn=0.0,
            p_expand=0.0,
            p_contract=1.0,
            contract_mu=np.log(0.75),
            contract_sigma=0.0,
        ),
        draws=50,
        seed=3,
    )
    np.testing.assert_allclose(pooled(down, "contraction_arr"), 0.25 * arr.sum(), rtol=1e-12)
    np.testing.assert_allclose(pooled(down, "grr"), 0.75, rtol=1e-12)


def test_mean_over_draws_matches_analytic_expectation() -> None:
    kw = book(n=400, seed=5)
    out = simulate_outcomes(**kw, draws=4000, seed=11)
    expected = expected_totals(**kw)
    for metric in ("expansion_arr", "contraction_arr", "churned_arr", "ending_arr"):
        values = pooled(out, metric)
        stderr = values.std() / np.sqrt(values.size)
        assert abs(values.mean() - expected[metric]) < 4 * stderr, metric


def test_outcomes_are_mutually_exclusive_with_the_documented_shares() -> None:
    # p_e + p_c = 0.8 > 1 - p_churn = 0.4: they share 0.4 in the ratio 3:1
    pc, pe, pco = exclusive_probabilities(np.array([0.6]), np.array([0.6]), np.array([0.2]))
    assert (pc[0], pe[0], pco[0]) == pytest.approx((0.6, 0.3, 0.1))
    kw = book(
        1,
        arr=np.array([1.0]),
        p_churn=0.6,
        p_expand=0.6,
        p_contract=0.2,
        expand_mu=np.log(2.0),
        expand_sigma=0.0,
        contract_mu=np.log(0.5),
        contract_sigma=0.0,
    )
    out = simulate_outcomes(**kw, draws=20_000, seed=2)
    churn = pooled(out, "churned_arr") > 0
    up = pooled(out, "expansion_arr") > 0
    down = pooled(out, "contraction_arr") > 0
    assert (churn.astype(int) + up + down <= 1).all()
    assert (churn.mean(), up.mean(), down.mean()) == pytest.approx((0.6, 0.3, 0.1), abs=0.015)
    assert set(np.round(pooled(out, "ending_arr"), 12)) == {0.0, 2.0, 0.5}


def test_amounts_have_the_right_sign_and_contraction_never_exceeds_arr() -> None:
    kw = book(
        1,
        arr=np.array([100.0]),
        p_churn=0.0,
        p_expand=1.0,
        p_contract=0.0,
        expand_mu=0.01,
        expand_sigma=0.5,
    )
    assert (pooled(simulate_outcomes(**kw, draws=3000, seed=4), "expansion_arr") > 0).all()
    kw = book(
        1,
        arr=np.array([100.0]),
        p_churn=0.0,
        p_expand=0.0,
        p_contract=1.0,
        contract_mu=-0.5,
        contract_sigma=2.0,
    )
    lost = pooled(simulate_outcomes(**kw, draws=3000, seed=4), "contraction_arr")
    assert ((lost > 0) & (lost <= 100.0)).all()


@pytest.mark.parametrize("ratio", [-1.0, -0.52, 1.5])
@pytest.mark.parametrize("kind", ["expand", "contract"])
def test_truncated_amounts_match_their_analytic_mean(ratio: float, kind: str) -> None:
    # mu / sigma = -1 takes the inverse-CDF path, -0.52 rejection then inverse CDF, 1.5 rejection
    sign = 1.0 if kind == "expand" else -1.0
    kw = book(
        1,
        arr=np.array([1.0]),
        p_churn=0.0,
        p_expand=float(kind == "expand"),
        p_contract=float(kind == "contract"),
    )
    kw.update({f"{kind}_mu": sign * ratio * 0.2, f"{kind}_sigma": 0.2})
    metric = "expansion_arr" if kind == "expand" else "contraction_arr"
    values = pooled(simulate_outcomes(**kw, draws=20_000, seed=9), metric)
    expected = expected_totals(**kw)[metric]
    assert (values > 0).all()
    assert abs(values.mean() - expected) < 4 * values.std() / np.sqrt(values.size)


def test_group_totals_sum_to_pooled_and_quantiles_are_ordered() -> None:
    groups = np.random.default_rng(0).choice(["SMB", "Mid-Market", "Enterprise"], 300)
    out = simulate_outcomes(**book(), groups=groups, draws=500, seed=3, quantiles=(0.1, 0.5, 0.9))
    assert set(out.draws["group"]) == {POOLED, "SMB", "Mid-Market", "Enterprise"}
    parts = out.draws[out.draws["group"] != POOLED].groupby("draw")
    for metric in ("starting_arr", "expansion_arr", "contraction_arr", "churned_arr", "ending_arr"):
        np.testing.assert_allclose(parts[metric].sum().to_numpy(), pooled(out, metric), rtol=1e-12)
    summary = out.summary
    assert list(summary.columns) == ["group", "metric", "mean", "p10", "p50", "p90"]
    assert ((summary["p10"] <= summary["p50"]) & (summary["p50"] <= summary["p90"])).all()
    nrr = summary[(summary["group"] == POOLED) & (summary["metric"] == "nrr")].iloc[0]
    assert nrr["p10"] < nrr["p90"]


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="p_churn"):
        simulate_outcomes(**book(p_churn=1.5), draws=10, seed=0)
    with pytest.raises(ValueError, match="p_expand"):
        simulate_outcomes(**book(p_expand=np.zeros(7)), draws=10, seed=0)
    with pytest.raises(ValueError, match="arr"):
        simulate_outcomes(**book(arr=-np.ones(300)), draws=10, seed=0)
    with pytest.raises(ValueError, match="expand_mu"):
        simulate_outcomes(**book(expand_mu=-1.0, expand_sigma=0.0), draws=10, seed=0)
    with pytest.raises(ValueError, match="reserved"):
        simulate_outcomes(**book(), groups=np.array([POOLED] * 300), draws=10, seed=0)
    with pytest.raises(ValueError, match="quantiles"):
        simulate_outcomes(**book(), draws=10, seed=0, quantiles=(0.9, 0.1))


def test_fan_keeps_churned_accounts_churned_and_compounds_arr() -> None:
    kw = book(1, arr=np.array([100.0]), expand_mu=np.log(2.0), expand_sigma=0.0)
    fan = simulate_fan(
        **{
            **kw,
            "p_churn": np.array([[0.5, 0.0, 0.0, 0.0]]),
            "p_expand": np.array([[0.0, 1.0, 1.0, 1.0]]),
            "p_contract": 0.0,
        },
        draws=2000,
        seed=1,
    )
    q4 = fan.summary[(fan.summary["quarter"] == 4) & (fan.summary["metric"] == "ending_arr")]
    assert q4["p10"].iloc[0] == 0.0 and q4["p90"].iloc[0] == pytest.approx(800.0)
    assert q4["mean"].iloc[0] == pytest.approx(400.0, rel=0.08)
    grr = fan.summary[(fan.summary["quarter"] == 4) & (fan.summary["metric"] == "grr")]
    assert grr["p90"].iloc[0] == pytest.approx(1.0)  # GRR never counts expansion


def test_fan_first_quarter_matches_single_horizon_expectation() -> None:
    kw = book(n=200, seed=2)
    fan = simulate_fan(**kw, quarters=2, draws=3000, seed=5, workers=2)
    q1 = fan.summary[(fan.summary["quarter"] == 1) & (fan.summary["group"] == POOLED)]
    expected = expected_totals(**kw)
    mean = q1.set_index("metric")["mean"]
    assert mean["ending_arr"] == pytest.approx(expected["ending_arr"], rel=0.01)
    assert mean["churned_arr"] == pytest.approx(expected["churned_arr"], rel=0.05)
    q2 = fan.summary[(fan.summary["quarter"] == 2) & (fan.summary["group"] == POOLED)]
    assert q2.set_index("metric").loc["nrr", "mean"] < mean["nrr"]  # churn-heavy book shrinks
    again = simulate_fan(**kw, quarters=2, draws=3000, seed=5)
    pd.testing.assert_frame_equal(fan.summary, again.summary)


def test_pinball_loss_on_hand_example() -> None:
    # q=0.1: 0.1 * (10 - 8) = 0.2; q=0.5: 0; q=0.9: (0.9 - 1) * (10 - 13) = 0.3
    loss = pinball_loss([10.0], [[8.0, 10.0, 13.0]], (0.1, 0.5, 0.9))
    assert loss == pytest.approx(0.5 / 3)
    assert pinball_loss([1.0, 2.0], [[1.0], [2.0]], (0.5,)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        pinball_loss([1.0, 2.0], [[1.0, 2.0]], (0.1, 0.9))


def test_interval_coverage_on_hand_example() -> None:
    assert interval_coverage([1, 5, 10, 3], [0, 5, 0, 4], [2, 6, 9, 8]) == 0.5
    with pytest.raises(ValueError, match="low exceeds high"):
        interval_coverage([1], [2], [1])


def test_naive_forecast_averages_last_four_quarters_before_as_of() -> None:
    ends = pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01", "2025-01-01"])
    history = pd.DataFrame(
        {
            "period_end": list(ends) * 2,
            "segment": ["SMB"] * 5 + ["Enterprise"] * 5,
            "nrr": [0.5, 0.9, 1.0, 1.1, 1.0, 1.2, 1.2, 1.2, 1.2, 2.0],
        }
    )
    out = naive_forecast(history, as_of=pd.Timestamp("2024-12-31")).set_index("group")
    smb = out.loc["SMB"]
    values = np.array([0.5, 0.9, 1.0, 1.1])
    assert smb["n_quarters"] == 4 and smb["mean"] == pytest.approx(values.mean())
    assert smb["sd"] == pytest.approx(values.std(ddof=1))
    assert smb["p10"] < smb["p50"] < smb["p90"]
    assert smb["p50"] == pytest.approx(values.mean())
    assert out.loc["Enterprise", "p10"] == out.loc["Enterprise", "p90"] == pytest.approx(1.2)
    everyone = naive_forecast(history, as_of=pd.Timestamp("2025-06-01"), group_col=None)
    assert list(everyone["group"]) == [POOLED]
    with pytest.raises(ValueError, match="segment"):
        naive_forecast(history.drop(columns="segment"), as_of=pd.Timestamp("2025-01-01"))


def _shock_inputs(n: int = 400) -> dict:
    rng = np.random.default_rng(3)
    return {
        "arr": rng.uniform(1_000, 50_000, n),
        "p_churn": rng.uniform(0.01, 0.15, n),
        "p_expand": rng.uniform(0.05, 0.3, n),
        "p_contract": np.full(n, 0.04),
        "expand_mu": 0.3,
        "expand_sigma": 0.2,
        "contract_mu": -0.3,
        "contract_sigma": 0.2,
    }


def _pooled(result, metric: str = "nrr") -> pd.Series:
    summary = result.summary
    return summary[(summary["group"] == "All") & (summary["metric"] == metric)].iloc[0]


def test_a_zero_shock_changes_nothing() -> None:
    from models.revenue.forecast import RateShock

    plain = simulate_outcomes(**_shock_inputs(), draws=2_000, seed=5)
    zero = simulate_outcomes(**_shock_inputs(), draws=2_000, seed=5, shock=RateShock())
    pd.testing.assert_frame_equal(plain.summary, zero.summary)


def test_a_common_shock_widens_the_book_interval_and_is_seeded() -> None:
    from models.revenue.forecast import RateShock

    shock = RateShock(churn_sigma=0.4, expand_sigma=0.4, scenarios=20)
    plain = _pooled(simulate_outcomes(**_shock_inputs(), draws=4_000, seed=5))
    shocked = simulate_outcomes(**_shock_inputs(), draws=4_000, seed=5, shock=shock)
    again = simulate_outcomes(**_shock_inputs(), draws=4_000, seed=5, shock=shock)
    pd.testing.assert_frame_equal(shocked.summary, again.summary)
    wide = _pooled(shocked)
    assert (wide["p90"] - wide["p10"]) > 1.5 * (plain["p90"] - plain["p10"])
    assert abs(wide["p50"] - plain["p50"]) < 0.5 * (plain["p90"] - plain["p10"])
    assert len(shocked.draws[shocked.draws["group"] == "All"]) == 4_000


def test_the_fan_carries_the_shock_through_every_quarter() -> None:
    from models.revenue.forecast import RateShock, simulate_fan

    shock = RateShock(churn_sigma=0.5, expand_sigma=0.5, scenarios=10)
    plain = simulate_fan(**_shock_inputs(), quarters=2, draws=2_000, seed=1).summary
    wide = simulate_fan(**_shock_inputs(), quarters=2, draws=2_000, seed=1, shock=shock).summary
    for frame in (plain, wide):
        assert set(frame["quarter"]) == {1, 2}
    pick = (wide["group"] == "All") & (wide["metric"] == "nrr") & (wide["quarter"] == 2)
    base = (plain["group"] == "All") & (plain["metric"] == "nrr") & (plain["quarter"] == 2)
    width = float((wide.loc[pick, "p90"] - wide.loc[pick, "p10"]).iloc[0])
    assert width > 1.5 * float((plain.loc[base, "p90"] - plain.loc[base, "p10"]).iloc[0])


@pytest.mark.parametrize(
    ("field", "value"), [("churn_sigma", -0.1), ("expand_sigma", float("nan")), ("scenarios", 0)]
)
def test_rate_shock_rejects_bad_parameters(field: str, value: float) -> None:
    from models.revenue.forecast import RateShock

    with pytest.raises(ValueError, match=field):
        RateShock(**{field: value})


def test_shift_log_odds_keeps_certain_outcomes_and_moves_the_rest() -> None:
    from models.revenue.forecast import shift_log_odds

    moved = shift_log_odds(np.array([0.0, 0.5, 1.0]), 1.0)
    assert moved[0] == 0.0 and moved[2] == 1.0
    assert moved[1] == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_excess_sigma_separates_common_moves_from_sampling_noise() -> None:
    from models.revenue.forecast_book import _excess_sigma

    rng = np.random.default_rng(0)
    starts = np.full(400, 800.0)  # many quarters so the estimate itself is precise
    steady = rng.binomial(800, 0.06, size=400).astype(float)
    # raw quarter-to-quarter spread of these log-odds is about 0.15: noise is taken out
    assert _excess_sigma(steady, starts) < 0.08
    log_odds = np.log(0.06 / 0.94) + rng.normal(0, 0.4, size=400)
    moving = rng.binomial(800, 1 / (1 + np.exp(-log_odds))).astype(float)
    assert _excess_sigma(moving, starts) == pytest.approx(0.4, abs=0.08)


def test_shock_persistence_sets_how_quarters_share_their_shift() -> None:
    from models.revenue.forecast import RateShock

    def paths(persistence: float, quarters: int) -> np.ndarray:
        shock = RateShock(churn_sigma=0.5, expand_sigma=0.3, scenarios=400, persistence=persistence)
        plan = shock.plan(4_000, seed=3, quarters=quarters)
        return np.stack([s.churn_shift for s in plan])  # (scenarios, quarters)

    lasting, fresh = paths(1.0, 4), paths(0.0, 4)
    # a fully persistent shock is one shift for the whole year
    np.testing.assert_allclose(lasting, np.repeat(lasting[:, :1], 4, axis=1))
    # independent quarters: consecutive shifts uncorrelated, same spread every quarter
    assert abs(np.corrcoef(fresh[:, 0], fresh[:, 1])[0, 1]) < 0.15
    np.testing.assert_allclose(fresh.std(axis=0), 0.5, rtol=0.15)
    # AR(1) in between: the lag-1 correlation is the persistence
    half = paths(0.6, 2)
    assert abs(np.corrcoef(half[:, 0], half[:, 1])[0, 1] - 0.6) < 0.1
    # the first quarter does not depend on how many quarters are planned
    np.testing.assert_array_equal(paths(0.0, 1)[:, 0], fresh[:, 0])


def test_independent_quarter_shocks_widen_the_fan_less_than_a_lasting_one() -> None:
    from models.revenue.forecast import RateShock, simulate_fan

    def widths(persistence: float) -> tuple[float, float]:
        shock = RateShock(churn_sigma=0.6, expand_sigma=0.6, scenarios=40, persistence=persistence)
        s = simulate_fan(**_shock_inputs(), quarters=4, draws=4_000, seed=2, shock=shock).summary
        nrr = s[(s["group"] == "All") & (s["metric"] == "nrr")].set_index("quarter")
        w = nrr["p90"] - nrr["p10"]
        return float(w.loc[1]), float(w.loc[4])

    first_lasting, last_lasting = widths(1.0)
    first_fresh, last_fresh = widths(0.0)
    assert first_fresh == pytest.approx(first_lasting, rel=1e-9)  # same first quarter
    assert last_fresh < 0.85 * last_lasting
