"""PSI drift check: flags shifted features, and only those."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.monitoring.drift import (
    DriftReference,
    fit_reference,
    population_stability,
    psi,
    summarise,
    with_seasonal,
)


def _population(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "wau": rng.poisson(20, n).astype("float64"),
            "stickiness": rng.beta(4, 3, n),
            "nps_latest": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 11, n)),
            "segment": pd.array(rng.choice(["SMB", "Mid-Market", "Enterprise"], n), "string"),
        }
    )


FEATURES = ["wau", "stickiness", "nps_latest", "segment"]


def test_same_population_is_stable() -> None:
    reference = fit_reference(_population(4000, 1), FEATURES)
    table = population_stability(reference, _population(4000, 2))
    assert (table["psi"] < 0.1).all(), table
    assert set(table["status"]) == {"stable"}


def test_shifted_features_are_flagged_and_only_those() -> None:
    reference = fit_reference(_population(4000, 1), FEATURES)
    shifted = _population(4000, 2)
    shifted["wau"] = shifted["wau"] * 1.6
    shifted["segment"] = pd.array(["Enterprise"] * len(shifted), "string")
    table = population_stability(reference, shifted).set_index("feature")
    assert table.loc["wau", "status"] == "significant"
    assert table.loc["segment", "status"] == "significant"
    assert set(table.loc[["stickiness", "nps_latest"], "status"]) == {"stable"}
    assert list(table.index[:2]) == sorted(["wau", "segment"], key=lambda f: -table.loc[f, "psi"])


def test_feature_that_stops_being_reported_is_drift() -> None:
    reference = fit_reference(_population(2000, 1), FEATURES)
    current = _population(2000, 2).drop(columns=["stickiness"])
    table = population_stability(reference, current).set_index("feature")
    assert table.loc["stickiness", "status"] == "significant"


def test_reference_round_trips_through_json() -> None:
    reference = fit_reference(_population(1000, 1), FEATURES)
    again = DriftReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    current = _population(1000, 3)
    pd.testing.assert_frame_equal(
        population_stability(reference, current), population_stability(again, current)
    )


def test_psi_is_zero_for_identical_and_positive_otherwise() -> None:
    shares = np.array([0.2, 0.3, 0.5])
    assert psi(shares, shares) == pytest.approx(0.0)
    assert psi(shares, np.array([0.5, 0.3, 0.2])) > 0.2


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(KeyError, match="not_a_feature"):
        fit_reference(_population(10, 1), ["not_a_feature"])
    with pytest.raises(ValueError, match="empty"):
        fit_reference(_population(10, 1).iloc[:0], FEATURES)
    with pytest.raises(ValueError, match="malformed"):
        DriftReference.from_dict({"features": [{"name": "x"}], "rows": 1, "thresholds": [0.1, 0.2]})


def test_summary_counts_statuses() -> None:
    reference = fit_reference(_population(2000, 1), FEATURES)
    shifted = _population(2000, 2).assign(wau=lambda f: f["wau"] + 15)
    summary = summarise(population_stability(reference, shifted))
    assert summary["significant"] == 1
    assert summary["worst"][0]["feature"] == "wau"


def test_feature_every_training_row_lacked_is_untrained_not_drift() -> None:
    # A company with one year of history: year-over-year features exist only from the last
    # snapshot on, after the model was trained without them.
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"usage": rng.normal(size=500), "usage_yoy": [np.nan] * 500})
    reference = fit_reference(train, ["usage", "usage_yoy"])
    latest = pd.DataFrame({"usage": rng.normal(size=300), "usage_yoy": rng.normal(size=300)})
    table = population_stability(reference, latest).set_index("feature")
    assert table.loc["usage_yoy", "status"] == "untrained"
    assert table.loc["usage_yoy", "psi"] > 1  # the shift is real, and reported as such
    summary = summarise(table.reset_index())
    assert summary["untrained_features"] == ["usage_yoy"]
    assert summary["significant"] == 0 and "usage_yoy" not in summary["significant_features"]
    assert summary["max_psi"] < 0.2


def _seasonal_year(seed: int) -> pd.DataFrame:
    """Twelve monthly snapshots of a feature that jumps every October (a seasonal rebound)."""
    rng = np.random.default_rng(seed)
    frames = []
    for date in pd.date_range("2025-01-01", periods=12, freq="MS"):
        growth = rng.normal(0.45 if date.month == 10 else 0.0, 0.1, 400)
        frames.append(
            pd.DataFrame({"as_of": date, "growth": growth, "seats": rng.poisson(20, 400)})
        )
    return pd.concat(frames, ignore_index=True)


def test_same_month_a_year_earlier_is_no_drift_but_a_real_shift_is() -> None:
    year = _seasonal_year(1)
    recent = year[year["as_of"] >= "2025-10-01"]  # Oct-Dec: the rebound is a third of it
    reference = with_seasonal(fit_reference(recent, ["growth", "seats"]), year)
    assert sorted(reference.seasonal) == list(range(1, 13))
    october = _seasonal_year(2)
    october = october[october["as_of"] == "2025-10-01"].assign(as_of=pd.Timestamp("2026-10-01"))
    # Recent months only: the rebound reads as drift; with the same month a year earlier it
    # does not, and a snapshot unlike both (seats doubled) still does.
    plain = population_stability(replace(reference, seasonal={}), october).set_index("feature")
    assert plain.loc["growth", "status"] == "significant"
    table = population_stability(reference, october).set_index("feature")
    assert set(table["status"]) == {"stable"}, table
    shifted = population_stability(reference, october.assign(seats=october["seats"] * 2))
    assert set(shifted.loc[shifted["status"] == "significant", "feature"]) == {"seats"}
    # A month with no seasonal bins, or a frame without as_of, falls back to the recent bins.
    no_date = population_stability(reference, october.drop(columns=["as_of"]))
    pd.testing.assert_frame_equal(
        no_date, population_stability(replace(reference, seasonal={}), october)
    )


def test_seasonal_reference_round_trips_and_old_references_still_load() -> None:
    year = _seasonal_year(1)
    reference = with_seasonal(fit_reference(year, ["growth", "seats"]), year)
    again = DriftReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert again == reference
    old = reference.to_dict()
    del old["seasonal"]  # written before seasonal bins existed
    assert DriftReference.from_dict(old).seasonal == {}
