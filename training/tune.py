"""Optuna search of booster parameters on inner time folds of the training data only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from training.config import ExperimentConfig, SearchDimension, Target
from training.fit import fit_scoring_model, target_labels
from training.folds import Fold, experiment_folds
from training.metrics import log_loss

TrialLogger = Callable[[int, dict[str, Any], float | None, str], None]


def suggest(trial: Any, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """Draw one parameter set from the search space."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "int":
            out[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            out[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return out


def inner_fold_loss(
    rows: pd.DataFrame, *, target: Target, config: ExperimentConfig, overrides: dict[str, Any]
) -> list[float]:
    """Validation log loss of the booster on each inner time fold (generator-free, for tests)."""
    return list(_fold_losses(rows, target=target, config=config, overrides=overrides))


class TuningSkipped(ValueError):
    """The search would choose by too few validation positives (tuning.min_positives)."""


def _inner_folds(rows: pd.DataFrame, config: ExperimentConfig) -> list[Fold]:
    return experiment_folds(rows, config, folds=config.tuning.inner_folds)


def validation_positives(
    rows: pd.DataFrame, *, target: Target, config: ExperimentConfig
) -> list[int]:
    """Positive labels in each inner fold's scored rows: what a trial's log loss rests on."""
    labels = target_labels(rows, target)
    return [int(labels[fold.test].sum()) for fold in _inner_folds(rows, config)]


def _fold_losses(
    rows: pd.DataFrame, *, target: Target, config: ExperimentConfig, overrides: dict[str, Any]
) -> Any:
    # Each trial scores the whole recipe it would ship (early stopping and calibration on its
    # own hold-out, refit) on a fold it never saw. Early-stopping on the scored fold itself
    # picked the best round with the answers in hand and favoured fast, overfitting settings.
    labels = target_labels(rows, target)
    if config.tuning.holdout not in ("same", config.calibration.holdout):
        calibration = config.calibration.model_copy(update={"holdout": config.tuning.holdout})
        config = config.model_copy(update={"calibration": calibration})
    for fold in _inner_folds(rows, config):
        model = fit_scoring_model(
            rows.iloc[fold.train], target=target, config=config, overrides=overrides
        )
        yield log_loss(labels[fold.test], model.predict_proba(rows.iloc[fold.test]))


def tune(
    rows: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    storage: str | None = None,
    study_name: str = "nrr",
    log_trial: TrialLogger | None = None,
) -> dict[str, Any]:
    """Best parameter overrides (empty when tuning is off); study stored in `storage` if given."""
    import optuna

    tuning = config.tuning
    if tuning.trials == 0 or not tuning.search_space:
        return {}
    if tuning.min_positives:
        held = validation_positives(rows, target=target, config=config)
        if min(held) < tuning.min_positives:
            raise TuningSkipped(
                f"the inner validation folds hold {held} positive labels, fewer than "
                f"tuning.min_positives {tuning.min_positives}"
            )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        storage=optuna.storages.RDBStorage(storage) if storage else None,
        study_name=study_name,
    )

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, tuning.search_space)
        losses: list[float] = []
        for step, loss in enumerate(
            _fold_losses(rows, target=target, config=config, overrides=params)
        ):
            losses.append(loss)
            trial.report(float(np.mean(losses)), step)
            if trial.should_prune():
                if log_trial is not None:
                    log_trial(trial.number, params, None, "pruned")
                raise optuna.TrialPruned()
        value = float(np.mean(losses))
        if log_trial is not None:
            log_trial(trial.number, params, value, "complete")
        return value

    # The configured parameters go first: the search then only moves away from them when a
    # trial beats them on the inner folds, never to something worse picked at random.
    start = _configured_start(config)
    if start:
        study.enqueue_trial(start)
    study.optimize(objective, n_trials=tuning.trials, timeout=tuning.timeout_seconds)
    return dict(study.best_params)


def _configured_start(config: ExperimentConfig) -> dict[str, Any]:
    """The booster's configured values of the searched parameters that lie inside the space."""
    start: dict[str, Any] = {}
    for name, dim in config.tuning.search_space.items():
        value = config.booster.params.get(name)
        if value is not None and dim.low <= float(value) <= dim.high:
            start[name] = int(value) if dim.type == "int" else float(value)
    return start
