"""The ARR tilt of churn probabilities for revenue sums (models/revenue/arr_tilt.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.revenue.arr_tilt import MIN_EVENTS, ArrTilt, fit_arr_tilt, latest_labelled


def _book(n: int, *, seed: int, intercept: float, slope: float) -> tuple[np.ndarray, ...]:
    """Scored probabilities, ARR and labels drawn from a known tilt of those probabilities."""
    rng = np.random.default_rng(seed)
    arr = np.exp(rng.normal(10.0, 1.0, n))
    p = 1.0 / (1.0 + np.exp(-rng.normal(-2.5, 0.8, n)))
    z = (np.log(arr) - np.log(arr).mean()) / np.log(arr).std()
    eta = np.log(p / (1 - p)) + intercept + slope * z
    truth = 1.0 / (1.0 + np.exp(-eta))
    churned = (rng.random(n) < truth).astype(float)
    return p, arr, churned, truth


def test_the_fit_recovers_a_known_tilt() -> None:
    p, arr, churned, _ = _book(60_000, seed=1, intercept=0.3, slope=-0.5)
    tilt = fit_arr_tilt(p, churned, arr)
    assert tilt.intercept == pytest.approx(0.3, abs=0.05)
    assert tilt.slope == pytest.approx(-0.5, abs=0.05)
    assert tilt.events == int(churned.sum()) and tilt.rows == 60_000


def test_tilted_probabilities_sum_to_the_arr_weighted_churn_on_new_accounts() -> None:
    # the model overstates large accounts' risk; the counts still match
    p, arr, churned, _ = _book(20_000, seed=2, intercept=0.0, slope=-0.6)
    tilt = fit_arr_tilt(p, churned, arr)
    q, arr2, _, truth = _book(20_000, seed=3, intercept=0.0, slope=-0.6)
    expected_before = float(np.sum(q * arr2))
    expected_after = float(np.sum(tilt.apply(q, arr2) * arr2))
    actual = float(np.sum(truth * arr2))  # the true expected churned ARR
    assert abs(expected_before - actual) > 0.2 * actual  # the untilted sum is far off
    # a few large accounts carry the sum, so the fitted slope's error shows: within 10%
    assert expected_after == pytest.approx(actual, rel=0.1)
    assert abs(expected_after - actual) < abs(expected_before - actual) / 3


def test_no_tilt_is_the_identity() -> None:
    p, arr, churned, _ = _book(20_000, seed=4, intercept=0.0, slope=0.0)
    tilt = fit_arr_tilt(p, churned, arr)
    assert abs(tilt.intercept) < 0.06 and abs(tilt.slope) < 0.06
    q = np.array([0.01, 0.2, 0.7])
    np.testing.assert_array_equal(ArrTilt().apply(q, [1.0, 2.0, 3.0]), q)


def test_too_few_churns_leave_the_probabilities_as_scored() -> None:
    p = np.full(500, 0.05)
    churned = np.zeros(500)
    churned[: MIN_EVENTS - 1] = 1.0
    tilt = fit_arr_tilt(p, churned, np.linspace(1e3, 1e6, 500))
    assert tilt.identity and tilt.events == MIN_EVENTS - 1
    assert f"{MIN_EVENTS - 1} churns" in tilt.describe()


def test_rows_without_arr_or_probability_are_left_out() -> None:
    p, arr, churned, _ = _book(5_000, seed=5, intercept=0.2, slope=-0.3)
    arr[:100] = 0.0
    p[100:200] = np.nan
    tilt = fit_arr_tilt(p, churned, arr)
    assert tilt.rows == 4_800
    with pytest.raises(ValueError, match="differ in length"):
        fit_arr_tilt(p[:10], churned, arr)


def test_latest_labelled_keeps_the_latest_dates() -> None:
    dates = np.array(["2026-01-01", "2026-03-01", "2026-02-01", "2026-03-01", "2025-12-01"])
    mask = latest_labelled(dates.astype("datetime64[ns]"), dates=2)
    assert list(mask) == [False, True, True, True, False]
