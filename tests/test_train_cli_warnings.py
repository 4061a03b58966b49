"""`nrr train` says so when a model ranks below its own baselines."""

from __future__ import annotations

from training.cli import baseline_warning


def test_warns_when_a_baseline_beats_the_model() -> None:
    pooled = {
        "model": {"roc_auc": 0.735},
        "logistic": {"roc_auc": 0.802},
        "rules": {"roc_auc": 0.781},
        "oracle": {"roc_auc": 0.9},
    }
    warning = baseline_warning("churn", pooled)
    assert warning is not None and "logistic baseline 0.802" in warning and "0.735" in warning


def test_judges_the_recipe_that_is_served() -> None:
    # The logistic regression won the selection and is served: only the rules can beat it.
    pooled = {"model": {"roc_auc": 0.70}, "logistic": {"roc_auc": 0.75}, "rules": {"roc_auc": 0.74}}
    assert baseline_warning("churn", pooled, served="logistic") is None
    pooled["rules"]["roc_auc"] = 0.78
    warning = baseline_warning("churn", pooled, served="logistic")
    assert warning is not None and "logistic regression's backtest ROC-AUC 0.750" in warning
    assert "rules baseline 0.780" in warning


def test_silent_when_the_model_wins_or_is_missing() -> None:
    # the oracle is not a baseline: only the simulator knows it
    pooled = {"model": {"roc_auc": 0.84}, "logistic": {"roc_auc": 0.83}, "oracle": {"roc_auc": 0.9}}
    assert baseline_warning("churn", pooled) is None
    assert baseline_warning("churn", {"logistic": {"roc_auc": 0.8}}) is None


def test_a_gap_within_the_noise_is_no_warning() -> None:
    pooled = {
        "model": {"roc_auc": 0.715},
        "logistic": {"roc_auc": 0.70},
        "rules": {"roc_auc": 0.716},
    }
    assert baseline_warning("churn", pooled) is None
    pooled["rules"]["roc_auc"] = 0.73
    assert baseline_warning("churn", pooled) is not None
