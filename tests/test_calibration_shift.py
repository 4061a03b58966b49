"""Calibration to the latest base rate (calibration.base_rate: latest) and the complexity rule
(booster.complexity: by_positives)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from training_factories import make_snapshots

from experiments import FAST_EXPERIMENT
from models.scoring.calibration import Calibrator, level_shift
from training.config import load_experiment
from training.evaluate import labelled_rows
from training.fit import fit_linear_model, holdout_split, target_labels
from training.lightgbm_fit import COMPLEXITY_STEPS, booster_params, complexity_for


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.3])
def test_level_shift_moves_the_mean_to_the_rate(rate: float) -> None:
    p = np.random.default_rng(0).beta(1, 12, size=500)
    d = level_shift(p, rate)
    assert np.mean(_sigmoid(np.log(p / (1 - p)) + d)) == pytest.approx(rate, abs=1e-8)
    assert (d > 0) == (rate > p.mean())


def test_shifted_calibrators_move_every_probability_on_the_logit_scale() -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(size=2000)
    y = (rng.random(2000) < _sigmoid(raw - 2)).astype(float)
    for method in ("sigmoid", "isotonic"):
        base = Calibrator.fit(raw, y, method=method)
        moved = base.shifted(0.7)
        p, q = base.predict(raw), moved.predict(raw)
        if method == "sigmoid":
            assert q == pytest.approx(_sigmoid(np.log(p / (1 - p)) + 0.7), abs=1e-9)
        # Order kept, every probability higher, the same JSON layout.
        assert (np.diff(q[np.argsort(raw)]) >= -1e-12).all()
        assert (q > p).all()
        assert Calibrator.from_dict(moved.to_dict()) == moved


def test_latest_base_rate_matches_the_latest_hold_out_date() -> None:
    frame = labelled_rows(make_snapshots(n_accounts=300, months=20, seed=2))
    config = load_experiment(FAST_EXPERIMENT)
    config = config.model_copy(
        update={
            "calibration": config.calibration.model_copy(update={"base_rate": "latest"}),
            "booster": config.booster.model_copy(update={"refit_all_rows": False}),
        }
    )
    model = fit_linear_model(frame, target="churn", config=config)
    _, cal = holdout_split(frame, config=config)
    held = frame.iloc[cal]
    latest = held[held["as_of"] == held["as_of"].max()]
    observed = target_labels(latest, "churn").mean()
    assert model.predict_proba(latest).mean() == pytest.approx(observed, abs=1e-6)
    assert model.metadata["calibration_method"].endswith("+latest")
    plain = fit_linear_model(
        frame,
        target="churn",
        config=config.model_copy(
            update={"calibration": config.calibration.model_copy(update={"base_rate": "holdout"})}
        ),
    )
    # Same ranking, only the level moves.
    a, b = plain.predict_proba(held), model.predict_proba(held)
    assert (np.argsort(a, kind="stable") == np.argsort(b, kind="stable")).all() or np.corrcoef(
        pd.Series(a).rank(), pd.Series(b).rank()
    )[0, 1] == pytest.approx(1.0)


def test_complexity_steps_by_positives() -> None:
    assert complexity_for(0) == COMPLEXITY_STEPS[0][1]
    assert complexity_for(149)["num_leaves"] == 4
    assert complexity_for(150)["num_leaves"] == 7
    assert complexity_for(999)["num_leaves"] == 11
    assert complexity_for(1000) == {}
    leaves = [p["num_leaves"] for _, p in COMPLEXITY_STEPS]
    assert leaves == sorted(leaves)  # fewer positives, never more leaves


def test_complexity_rule_applies_only_when_asked_and_tuning_overrides_it() -> None:
    booster = load_experiment(FAST_EXPERIMENT).booster
    fixed = booster_params(booster, seed=1, positives=100)
    assert fixed["num_leaves"] == booster.params["num_leaves"]
    ruled = booster.model_copy(update={"complexity": "by_positives"})
    assert booster_params(ruled, seed=1, positives=100)["num_leaves"] == 4
    assert (
        booster_params(ruled, seed=1, positives=5000)["num_leaves"] == booster.params["num_leaves"]
    )
    tuned = booster_params(ruled, seed=1, positives=100, overrides={"num_leaves": 31})
    assert tuned["num_leaves"] == 31 and tuned["lambda_l2"] == 10.0


@pytest.mark.parametrize("recipe", ["lightgbm", "logistic"])
def test_latest_base_rate_holds_for_the_served_refit_model(recipe: str) -> None:
    from training.fit import fit_recipe

    frame = labelled_rows(make_snapshots(n_accounts=300, months=20, seed=3))
    config = load_experiment(FAST_EXPERIMENT)
    config = config.model_copy(
        update={"calibration": config.calibration.model_copy(update={"base_rate": "latest"})}
    )
    assert config.booster.refit_all_rows
    model = fit_recipe(frame, recipe=recipe, target="churn", config=config)  # type: ignore[arg-type]
    _, cal = holdout_split(frame, config=config)
    held = frame.iloc[cal]
    latest = held[held["as_of"] == held["as_of"].max()]
    observed = target_labels(latest, "churn").mean()
    assert model.predict_proba(latest).mean() == pytest.approx(observed, abs=1e-6)


def test_latest_rows_reach_back_until_they_hold_enough_positives() -> None:
    from training.fit import latest_rows

    as_of = pd.Series(pd.to_datetime(["2025-01-01"] * 4 + ["2025-02-01"] * 4 + ["2025-03-01"] * 4))
    labels = np.array([1, 1, 0, 0] + [1, 0, 0, 0] + [1, 0, 0, 0], dtype=float)
    for wanted, first_date in ((0, "2025-03-01"), (1, "2025-03-01"), (2, "2025-02-01"),
                               (3, "2025-01-01"), (99, "2025-01-01")):  # fmt: skip
        mask = latest_rows(as_of, labels, min_positives=wanted)
        # Independently: every row from the first date counted back, nothing before it.
        assert (mask == (as_of >= pd.Timestamp(first_date)).to_numpy()).all(), wanted


@pytest.mark.parametrize("refit", [False, True])
def test_latest_level_rests_on_the_positives_asked_for(refit: bool) -> None:
    from training.fit import fit_recipe

    frame = labelled_rows(make_snapshots(n_accounts=300, months=20, seed=6))
    config = load_experiment(FAST_EXPERIMENT)
    # More positives than the hold-out holds: the level is the whole hold-out's rate.
    config = config.model_copy(
        update={
            "calibration": config.calibration.model_copy(
                update={"base_rate": "latest", "latest_min_positives": 10**6}
            ),
            "booster": config.booster.model_copy(update={"refit_all_rows": refit}),
        }
    )
    model = fit_recipe(frame, recipe="logistic", target="churn", config=config)
    _, cal = holdout_split(frame, config=config)
    # Without the refit the hold-out's calibrator is served: its level is the hold-out's.
    # After the refit the level is read on every training row (all dates, all accounts).
    level_rows = frame if refit else frame.iloc[cal]
    assert level_rows["as_of"].nunique() > 1
    observed = target_labels(level_rows, "churn").mean()
    assert model.predict_proba(level_rows).mean() == pytest.approx(observed, abs=1e-6)


@pytest.mark.parametrize("recipe", ["lightgbm", "logistic"])
def test_an_account_hold_out_reads_the_latest_level_on_every_account(recipe: str) -> None:
    from training.fit import fit_recipe

    # A young company whose churn rate doubles over its last months: labels are redrawn
    # with a rate rising by date, so the hold-out's year-long average lags the latest one.
    frame = labelled_rows(make_snapshots(n_accounts=400, months=12, seed=8))
    dates = np.sort(frame["as_of"].unique())
    step = frame["as_of"].map({d: i for i, d in enumerate(dates)}).to_numpy()
    rng = np.random.default_rng(8)
    frame = frame.assign(churned=rng.random(len(frame)) < 0.03 + 0.12 * step / step.max())
    config = load_experiment(FAST_EXPERIMENT)
    config = config.model_copy(
        update={
            "calibration": config.calibration.model_copy(
                update={"base_rate": "latest", "holdout": "accounts", "latest_min_positives": 20}
            )
        }
    )
    model = fit_recipe(frame, recipe=recipe, target="churn", config=config)  # type: ignore[arg-type]
    latest = frame[frame["as_of"] == dates[-1]]
    observed = target_labels(latest, "churn").mean()
    assert target_labels(latest, "churn").sum() >= 20
    assert model.predict_proba(latest).mean() == pytest.approx(observed, abs=1e-6)
