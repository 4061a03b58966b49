"""Domain directions in the booster (`booster.monotone`): the constraint list LightGBM gets
is the registry's, in the design matrix's column order, and it holds against the data."""

from __future__ import annotations

from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.registry import BY_NAME, FEATURES, MONOTONE, monotone_direction
from models.scoring.booster import ScoringModel, design_matrix, model_features
from tests.training_factories import make_snapshots
from training.config import BoosterConfig, CalibrationConfig, ExperimentConfig
from training.fit import booster_params, fit_booster, fit_scoring_model

Target = Literal["churn", "expansion"]
ON = BoosterConfig(num_threads=1, max_rounds=60, early_stopping_rounds=20, monotone=True)
CONFIG = ExperimentConfig(seed=7, booster=ON, calibration=CalibrationConfig(periods=3))


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    frame = make_snapshots(n_accounts=120, months=20, seed=3)
    return frame[frame["labelled"]].reset_index(drop=True)


def test_registry_directions_agree_with_the_health_direction() -> None:
    """A feature whose higher value is healthier never raises churn nor lowers expansion."""
    assert set(MONOTONE) <= set(BY_NAME)
    for feature in FEATURES:
        if feature.kind == "category":
            assert (feature.churn_monotone, feature.expansion_monotone) == (0, 0), feature.name
        assert feature.churn_monotone in (0, -feature.direction), feature.name
        assert feature.expansion_monotone in (0, feature.direction), feature.name
    assert monotone_direction("mau", "churn") == -1
    assert monotone_direction("sentiment_90d", "churn") == -1  # a lower sentiment: more churn
    assert monotone_direction("champion_departed_90d", "churn") == 1
    assert monotone_direction("days_since_last_activity", "churn") == 1
    assert monotone_direction("tenure_days", "churn") == 0
    assert monotone_direction("licence_growth_365d", "expansion") == 1
    assert monotone_direction("mau", "expansion") == 0


@pytest.mark.parametrize("target", ["churn", "expansion"])
def test_constraints_follow_the_design_matrix_columns(
    labelled: pd.DataFrame, target: Target
) -> None:
    names = model_features(labelled)
    params = booster_params(ON, seed=1, features=names, target=target)
    constraints = params["monotone_constraints"]
    assert params["monotone_constraints_method"] == "advanced"
    assert len(constraints) == len(names)
    for name, value in zip(names, constraints, strict=True):
        expected = 0 if BY_NAME[name].kind == "category" else monotone_direction(name, target)
        assert value == expected, name
    assert any(constraints)

    model = fit_scoring_model(labelled, target=target, config=CONFIG)
    assert model.booster is not None
    assert model.booster.feature_name() == list(model.feature_names)
    stored = model.metadata["params"]["monotone_constraints"]
    assert stored == [
        0 if BY_NAME[n].kind == "category" else monotone_direction(n, target)
        for n in model.feature_names
    ]


def test_off_by_default_and_needs_the_columns_when_on() -> None:
    assert BoosterConfig().monotone is False
    assert "monotone_constraints" not in booster_params(
        BoosterConfig(), seed=1, features=["mau"], target="churn"
    )
    with pytest.raises(ValueError, match="monotone"):
        booster_params(ON, seed=1)


def _grid_predictions(
    booster: lgb.Booster | None, base: pd.DataFrame, feature: str, grid: np.ndarray
) -> np.ndarray:
    """Raw scores (rows x grid) with `feature` set to each grid value, all else fixed."""
    assert booster is not None
    out = []
    for value in grid:
        x = base.copy()
        x[feature] = value
        out.append(np.asarray(booster.predict(x, raw_score=True), dtype="float64"))
    return np.column_stack(out)


def _synthetic(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn that RISES with MAU in the data (against the domain) and a non-monotone,
    noisy effect of sentiment; tenure is free."""
    rng = np.random.default_rng(seed)
    n = 6000
    x = pd.DataFrame(
        {
            "mau": rng.gamma(2.0, 10.0, n),
            "sentiment_90d": rng.uniform(-1.0, 1.0, n),
            "tenure_days": rng.uniform(0, 1500, n),
        }
    )
    logit = (
        -2.5
        + 0.06 * x["mau"]
        + 1.2 * np.sin(4.0 * x["sentiment_90d"])
        - 0.0008 * x["tenure_days"]
        + rng.normal(0, 0.5, n)
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(float)
    return x, y


def test_partial_dependence_holds_the_declared_direction_against_the_data() -> None:
    x, y = _synthetic(seed=5)
    names = list(x.columns)
    free = booster_params(BoosterConfig(num_threads=1), seed=3, features=names, target="churn")
    held = booster_params(ON, seed=3, features=names, target="churn")
    assert held["monotone_constraints"] == [-1, -1, 0]
    unconstrained = fit_booster(x, y, params=free, rounds=150)
    constrained = fit_booster(x, y, params=held, rounds=150)
    base = x.sample(200, random_state=1).reset_index(drop=True)

    for feature in ("mau", "sentiment_90d"):
        grid = np.linspace(x[feature].quantile(0.01), x[feature].quantile(0.99), 40)
        scores = _grid_predictions(constrained, base, feature, grid)
        steps = np.diff(scores, axis=1)
        assert (steps <= 1e-12).all(), f"{feature}: churn rises with it for some account"
        # The data pulls the other way: unconstrained, the mean partial dependence rises.
        loose = _grid_predictions(unconstrained, base, feature, grid).mean(axis=0)
        assert (np.diff(loose) > 1e-9).any(), feature
    mau_grid = np.linspace(0.0, 60.0, 30)
    loose_mau = _grid_predictions(unconstrained, base, "mau", mau_grid).mean(axis=0)
    assert loose_mau[-1] > loose_mau[0]  # the data's own (anti-domain) direction


def test_every_constrained_feature_holds_through_the_whole_recipe(labelled: pd.DataFrame) -> None:
    """fit_scoring_model with `booster.monotone` (early stopping, refit on every row): each
    declared feature moves the raw churn score only its way, for every account on a grid."""
    model: ScoringModel = fit_scoring_model(labelled, target="churn", config=CONFIG)
    base = design_matrix(
        labelled.sample(60, random_state=2), features=model.feature_names, levels=model.levels
    ).reset_index(drop=True)
    checked = 0
    for name in model.feature_names:
        sign = monotone_direction(name, "churn")
        if sign == 0:
            continue
        column = labelled[name].astype(float)
        grid = np.linspace(column.min(), column.max(), 25)
        steps = np.diff(_grid_predictions(model.booster, base, name, grid), axis=1)
        assert (sign * steps >= -1e-12).all(), name
        checked += 1
    assert checked >= 2
