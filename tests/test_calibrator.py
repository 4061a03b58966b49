"""Calibrator: raw booster score -> probability, JSON round trip, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.scoring.calibration import Calibrator


def _miscalibrated(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-2, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(float)
    raw = 3.0 * true_logit + 2.0  # over-confident, shifted score
    return raw, labels


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_reduces_log_loss_of_a_miscalibrated_score(method: str) -> None:
    raw, labels = _miscalibrated()
    naive = np.clip(1 / (1 + np.exp(-raw)), 1e-9, 1 - 1e-9)
    calibrated = Calibrator.fit(raw, labels, method=method).predict(raw)

    def loss(p: np.ndarray) -> float:
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))

    assert loss(calibrated) < loss(naive) - 0.05
    assert abs(calibrated.mean() - labels.mean()) < 0.01


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrator_is_monotone_and_round_trips_through_json(method: str) -> None:
    raw, labels = _miscalibrated(seed=1)
    calib = Calibrator.fit(raw, labels, method=method)
    grid = np.linspace(-15, 15, 200)
    assert (np.diff(calib.predict(grid)) >= 0).all()
    again = Calibrator.from_dict(json.loads(json.dumps(calib.to_dict())))
    np.testing.assert_array_equal(again.predict(raw), calib.predict(raw))


def test_calibrated_probabilities_stay_strictly_inside_zero_and_one() -> None:
    raw = np.array([-5.0, -4.0, 4.0, 5.0])
    labels = np.array([0.0, 0.0, 1.0, 1.0])
    p = Calibrator.fit(raw, labels, method="isotonic").predict(np.array([-100.0, 100.0]))
    assert 0 < p[0] < p[1] < 1


def test_unknown_method_and_one_class_labels_are_rejected() -> None:
    raw, labels = _miscalibrated(n=100)
    with pytest.raises(ValueError, match="method"):
        Calibrator.fit(raw, labels, method="beta")
    with pytest.raises(ValueError, match="both positive and negative"):
        Calibrator.fit(raw, np.zeros_like(raw), method="sigmoid")
    with pytest.raises(ValueError, match="params"):
        Calibrator.from_dict({"method": "sigmoid", "params": {"x": [1.0]}})


def test_isotonic_calibration_keeps_the_raw_order_between_its_outer_knots() -> None:
    # A step-function isotonic map ties every account inside a block: a worklist sorted by
    # probability would lose the model's order there. The centred map must not.
    raw, labels = _miscalibrated(seed=2)
    calib = Calibrator.fit(raw, labels, method="isotonic")
    knots = np.asarray(calib.params["x"])
    inside = np.sort(raw[(raw > knots[0]) & (raw < knots[-1])])
    p = calib.predict(inside)
    assert inside.size > 3000
    assert (np.diff(p) > 0).sum() >= np.count_nonzero(np.diff(inside) > 0) - 1


def test_isotonic_calibration_preserves_the_rate_of_each_pooled_block() -> None:
    raw, labels = _miscalibrated(seed=3)
    calib = Calibrator.fit(raw, labels, method="isotonic")
    knots_x, knots_y = np.asarray(calib.params["x"]), np.asarray(calib.params["y"])
    assert (np.diff(knots_x) > 0).all() and (np.diff(knots_y) >= 0).all()
    # bands of scores get roughly their observed rate
    for low, high in [(-np.inf, -4.0), (-4.0, 0.0), (0.0, np.inf)]:
        band = (raw >= low) & (raw < high)
        assert abs(calib.predict(raw[band]).mean() - labels[band].mean()) < 0.02


def test_isotonic_blocks_without_positives_say_rare_not_never() -> None:
    rng = np.random.default_rng(4)
    raw = rng.normal(0, 1, 3000)
    labels = ((raw > 0.5) & (rng.random(3000) < 0.4)).astype(float)  # none below 0.5
    calib = Calibrator.fit(raw, labels, method="isotonic")
    lowest = calib.predict(np.array([raw.min() - 1.0]))[0]
    below = int((raw <= 0.5).sum())
    # about half an event among the ~2,000 scores without any: rare, not 1e-6
    assert 0.5 / (raw.size + 1) <= lowest < 0.002 and below > 1500
    assert (np.diff(calib.predict(np.sort(raw))) >= 0).all()


def test_sigmoid_never_turns_the_ranking_upside_down() -> None:
    # A hold-out where higher raw scores happen to have fewer positives: Platt alone would
    # fit a negative slope and invert the model's order for every account it scores.
    import numpy as np

    from models.scoring.calibration import FLAT_SLOPE, Calibrator

    rng = np.random.default_rng(0)
    raw = rng.normal(size=400)
    labels = (rng.random(400) < np.where(raw > 0, 0.02, 0.15)).astype(float)
    cal = Calibrator.fit(raw, labels, method="sigmoid")
    p = cal.predict(np.sort(raw))
    assert np.all(np.diff(p) >= 0)
    assert cal.params["coef"] == [FLAT_SLOPE]
    # What the hold-out supports: its base rate, to within the tiny spread.
    assert abs(float(cal.predict(np.array([raw.mean()]))[0]) - labels.mean()) < 1e-6
