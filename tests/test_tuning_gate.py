"""tuning.min_positives: no Optuna search when an inner validation fold holds too few
positive labels to choose by (the experiment's parameters stand)."""

from __future__ import annotations

import pandas as pd
import pytest
from training_factories import make_snapshots

from experiments import FAST_EXPERIMENT
from training.config import SearchDimension, TuningConfig, load_experiment
from training.evaluate import labelled_rows
from training.tune import TuningSkipped, tune, validation_positives

SPACE = {"num_leaves": SearchDimension(type="int", low=4, high=16)}


def _config(min_positives: int):  # type: ignore[no-untyped-def]
    config = load_experiment(FAST_EXPERIMENT)
    tuning = TuningConfig(trials=1, inner_folds=2, min_positives=min_positives, search_space=SPACE)
    return config.model_copy(update={"tuning": tuning})


def _rows() -> pd.DataFrame:
    return labelled_rows(make_snapshots(n_accounts=150, months=20, seed=9))


def test_validation_positives_count_each_inner_folds_scored_rows() -> None:
    rows, config = _rows(), _config(0)
    # Independently: the last two cuts `spacing` dates apart, each fold scoring its dates
    # up to the next cut.
    dates = sorted(rows["as_of"].unique())
    spacing = config.backtest.spacing
    cuts = [dates[len(dates) - (2 - k) * spacing] for k in range(2)]
    expected = []
    for k, cut in enumerate(cuts):
        scored = rows["as_of"] >= cut
        if k + 1 < len(cuts):
            scored &= rows["as_of"] < cuts[k + 1]
        expected.append(int(rows.loc[scored, "churned"].astype(bool).sum()))
    assert validation_positives(rows, target="churn", config=config) == expected
    assert min(expected) > 0


def test_too_few_validation_positives_skip_the_search() -> None:
    rows = _rows()
    fewest = min(validation_positives(rows, target="churn", config=_config(0)))
    trials: list[int] = []
    with pytest.raises(TuningSkipped, match=f"fewer than tuning.min_positives {fewest + 1}"):
        tune(rows, target="churn", config=_config(fewest + 1),
             log_trial=lambda n, *_: trials.append(n))  # fmt: skip
    assert trials == []  # not one trial ran
    best = tune(rows, target="churn", config=_config(fewest),
                log_trial=lambda n, *_: trials.append(n))  # fmt: skip
    assert trials == [0] and 4 <= best["num_leaves"] <= 16


def test_nrr_evaluate_says_the_search_was_skipped_and_uses_the_experiments_params() -> None:
    from training.evaluate_cuts import _tuned_before

    rows = _rows()
    said: list[str] = []
    cut = pd.Timestamp(sorted(rows["as_of"].unique())[-1])
    got = _tuned_before(rows, cut, target="churn", config=_config(10**6), say=said.append)
    assert got == {}
    assert any("tuning skipped" in line and "min_positives" in line for line in said)
