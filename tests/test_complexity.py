"""booster.complexity cross_validated: the ladder's rung chosen on account-grouped folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from training_factories import make_snapshots

from models.scoring.booster import model_features
from training.complexity import COMPLEXITY_LADDER, ComplexityChoice, choose_complexity
from training.config import ExperimentConfig, load_experiment
from training.evaluate import labelled_rows
from training.fit import fit_scoring_model

QUARTERLY = Path(__file__).resolve().parents[1] / "experiments" / "quarterly.yaml"


@pytest.fixture(scope="module")
def config() -> ExperimentConfig:
    config = load_experiment(QUARTERLY)
    assert config.booster.complexity == "cross_validated"
    return config


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return labelled_rows(make_snapshots(n_accounts=400, months=12, seed=0))


def _z(rows: pd.DataFrame, column: str) -> np.ndarray:
    values = rows[column].to_numpy(dtype=float)
    return (values - np.nanmean(values)) / np.nanstd(values)


def test_an_interaction_is_not_given_to_the_additive_rung(
    rows: pd.DataFrame, config: ExperimentConfig
) -> None:
    # Risk high exactly when one of two features is above its mean: no sum of one-split
    # trees can express that, a 3-leaf tree can.
    rng = np.random.default_rng(3)
    either = (_z(rows, "mau") > 0) ^ (_z(rows, "seat_utilisation") > 0)
    labels = (rng.random(len(rows)) < np.where(either, 0.4, 0.03)).astype(float)
    choice = choose_complexity(
        rows, labels, target="churn", config=config, features=model_features(rows)
    )
    assert choice is not None
    assert choice.name != "2 leaves"
    assert choice.losses["2 leaves"] > choice.losses[choice.name] + 0.02
    assert choice.losses[choice.name] == min(choice.losses.values())
    assert choice.params == dict(COMPLEXITY_LADDER)[choice.name]


def test_an_account_cannot_be_learnt_from_its_own_rows(
    rows: pd.DataFrame, config: ExperimentConfig
) -> None:
    # Each account's label is a coin flip repeated on all its rows, and one feature is an
    # account-level random code: a fold that kept an account on both sides would let the
    # larger trees memorise the code and score far below the base rate's entropy.
    rng = np.random.default_rng(11)
    accounts = rows["account_id"].unique()
    flip = dict(zip(accounts, rng.random(len(accounts)) < 0.15, strict=True))
    code = dict(zip(accounts, rng.random(len(accounts)), strict=True))
    frame = rows.assign(arr=rows["account_id"].map(code).astype(float) * 1e5)
    labels = frame["account_id"].map(flip).to_numpy(dtype=float)
    rate = labels.mean()
    entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    choice = choose_complexity(
        frame, labels, target="churn", config=config, features=model_features(frame)
    )
    assert choice is not None
    assert min(choice.losses.values()) > entropy - 0.01


def test_too_few_accounts_to_fold_keeps_the_experiment_params(
    rows: pd.DataFrame, config: ExperimentConfig
) -> None:
    few = rows[rows["account_id"].isin(rows["account_id"].unique()[:4])]
    labels = np.arange(len(few)) % 2.0
    assert choose_complexity(few, labels, target="churn", config=config, features=["mau"]) is None


def test_the_fit_records_its_choice_and_tuned_parameters_override_it(
    rows: pd.DataFrame, config: ExperimentConfig
) -> None:
    model = fit_scoring_model(rows, target="churn", config=config)
    chosen = ComplexityChoice.from_dict(model.metadata["complexity"])
    expected = {**config.booster.params, **dict(COMPLEXITY_LADDER)[chosen.name]}
    assert model.metadata["params"]["num_leaves"] == expected["num_leaves"]
    assert chosen.name in chosen.reason() and "account-grouped folds" in chosen.reason()
    tuned = fit_scoring_model(rows, target="churn", config=config, overrides={"num_leaves": 5})
    assert "complexity" not in tuned.metadata
    assert tuned.metadata["params"]["num_leaves"] == 5
