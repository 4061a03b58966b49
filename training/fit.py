"""The training recipes: booster (or logistic regression) on the earlier rows, calibrator on the
later hold-out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.scoring.booster import ScoringModel, design_matrix, learn_levels, model_features
from models.scoring.calibration import Calibrator, level_shift
from training.baselines import LOGISTIC_C, LOGISTIC_MAX_ITER, LogisticBaseline
from training.complexity import choose_complexity
from training.config import LABEL_OF, ExperimentConfig, Target
from training.folds import account_split, calibration_split
from training.lightgbm_fit import booster_params, fit_booster

Recipe = Literal["lightgbm", "logistic"]
RECIPES: tuple[Recipe, ...] = ("lightgbm", "logistic")


def target_labels(frame: pd.DataFrame, target: Target) -> np.ndarray:
    """0/1 labels of a target on labelled rows; a clear error when any is missing."""
    column = LABEL_OF[target]
    if column not in frame.columns:
        raise ValueError(f"snapshot frame has no label column {column!r}")
    values = frame[column]
    if values.isna().any():
        raise ValueError(f"{values.isna().sum()} rows have no {column!r} label (unlabelled rows?)")
    return values.astype(bool).to_numpy(dtype=float)


def holdout_split(
    frame: pd.DataFrame, *, config: ExperimentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (fit, calibrate) of the experiment's hold-out: latest dates or accounts."""
    calibration = config.calibration
    if calibration.holdout == "accounts":
        return account_split(frame["account_id"], share=calibration.account_share, seed=config.seed)
    return calibration_split(
        frame["as_of"], horizon_days=config.snapshot.horizon_days, periods=calibration.periods
    )


def fit_scoring_model(
    frame: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    overrides: Mapping[str, Any] | None = None,
    features: Sequence[str] | None = None,
) -> ScoringModel:
    """Booster on rows whose labels closed before the hold-out, calibrator on the hold-out."""
    labels = target_labels(frame, target)
    names = list(features) if features is not None else model_features(frame)
    if not names:
        raise ValueError("snapshot frame has no registry feature columns to train on")
    fit_pos, cal_pos = holdout_split(frame, config=config)
    fit_rows, cal_rows = frame.iloc[fit_pos], frame.iloc[cal_pos]
    levels = learn_levels(fit_rows, names)
    x_fit = design_matrix(fit_rows, features=names, levels=levels)
    x_cal = design_matrix(cal_rows, features=names, levels=levels)
    choice = None
    if config.booster.complexity == "cross_validated" and not overrides:
        # Tuned parameters (overrides) were chosen by their own search and stand. Every
        # training row takes part: the hold-out's recent positives are a third of a young
        # company's, and a choice among four rungs tells the calibrator next to nothing.
        choice = choose_complexity(frame, labels, target=target, config=config, features=names)
    params = booster_params(
        config.booster, seed=config.seed, features=names, target=target,
        overrides=choice.params if choice is not None else overrides,
        positives=int(labels[fit_pos].sum()),
    )  # fmt: skip
    booster = fit_booster(
        x_fit,
        labels[fit_pos],
        params=params,
        rounds=config.booster.max_rounds,
        valid=(x_cal, labels[cal_pos]),
        early_stopping_rounds=config.booster.early_stopping_rounds,
    )
    rounds = int(booster.best_iteration or booster.current_iteration())
    raw_cal = np.asarray(booster.predict(x_cal, raw_score=True), dtype=float)
    calibrator, method = _calibrate(
        raw_cal, labels[cal_pos], config=config, as_of=cal_rows["as_of"]
    )
    train_rows = len(fit_pos)
    if config.booster.refit_all_rows:
        # The hold-out and the horizon-long gap before it are the latest behaviour, and left
        # out they cost the demo 0.004-0.005 ROC-AUC. Rounds and calibrator come from the
        # held-out fit, as in sklearn's CalibratedClassifierCV(ensemble=False).
        levels = learn_levels(frame, names)
        booster = fit_booster(
            design_matrix(frame, features=names, levels=levels),
            labels,
            params=params,
            rounds=rounds,
        )
        train_rows = len(frame)
        calibrator = _anchor_latest(
            calibrator,
            lambda rows: np.asarray(
                booster.predict(design_matrix(rows, features=names, levels=levels), raw_score=True),
                dtype=float,
            ),
            frame, labels, config=config,
        )  # fmt: skip
    metadata = _fit_metadata(
        frame, labels, target=target, config=config, recipe="lightgbm", method=method,
        params={k: v for k, v in params.items() if k != "verbosity"},
        train_rows=train_rows, calibration_rows=len(cal_pos),
    )  # fmt: skip
    metadata["best_iteration"] = rounds
    if choice is not None:
        metadata["complexity"] = choice.to_dict()
    return ScoringModel(booster, tuple(names), levels, calibrator, metadata)


def fit_linear_model(
    frame: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    features: Sequence[str] | None = None,
) -> ScoringModel:
    """The logistic recipe, as `fit_scoring_model`: fit before the hold-out, calibrate on it.

    Coefficients come from `LogisticBaseline` (the backtest's logistic scorer); with
    `booster.refit_all_rows` they are refitted on every row and the hold-out's calibrator kept.
    """
    labels = target_labels(frame, target)
    names = list(features) if features is not None else model_features(frame)
    if not names:
        raise ValueError("snapshot frame has no registry feature columns to train on")
    fit_pos, cal_pos = holdout_split(frame, config=config)
    held = LogisticBaseline.fit(
        frame.iloc[fit_pos], labels[fit_pos], features=names, seed=config.seed
    )
    raw_cal = held.predict_raw(frame.iloc[cal_pos])
    calibrator, method = _calibrate(
        raw_cal, labels[cal_pos], config=config, as_of=frame["as_of"].iloc[cal_pos]
    )
    final, train_rows = held, len(fit_pos)
    if config.booster.refit_all_rows:
        final = LogisticBaseline.fit(frame, labels, features=names, seed=config.seed)
        train_rows = len(frame)
        calibrator = _anchor_latest(calibrator, final.predict_raw, frame, labels, config=config)
    metadata = _fit_metadata(
        frame, labels, target=target, config=config, recipe="logistic", method=method,
        params={"C": LOGISTIC_C, "max_iter": LOGISTIC_MAX_ITER},
        train_rows=train_rows, calibration_rows=len(cal_pos),
    )  # fmt: skip
    return replace(final.model, calibrator=calibrator, metadata=metadata)


def _fit_metadata(
    frame: pd.DataFrame,
    labels: np.ndarray,
    *,
    target: Target,
    config: ExperimentConfig,
    recipe: str,
    method: str,
    params: dict[str, Any],
    train_rows: int,
    calibration_rows: int,
) -> dict[str, Any]:
    """What both recipes record about a fit (one list, so they cannot drift apart)."""
    horizon = config.snapshot.horizon_days
    return {
        "target": target,
        "recipe": recipe,
        "seed": config.seed,
        "params": params,
        "calibration_method": method,
        "calibration_holdout": config.calibration.holdout,
        "refit_all_rows": config.booster.refit_all_rows,
        "train_rows": int(train_rows),
        "calibration_rows": int(calibration_rows),
        "positives": int(labels.sum()),
        "as_of_min": str(frame["as_of"].min()),
        "as_of_max": str(frame["as_of"].max()),
        "label_end": str(frame["as_of"].max() + pd.Timedelta(days=horizon)),
        "horizon_days": horizon,
    }


def fit_recipe(
    frame: pd.DataFrame,
    *,
    recipe: Recipe,
    target: Target,
    config: ExperimentConfig,
    overrides: Mapping[str, Any] | None = None,
    features: Sequence[str] | None = None,
) -> ScoringModel:
    """`fit_scoring_model` ("lightgbm", with the booster overrides) or `fit_linear_model`."""
    if recipe == "logistic":
        return fit_linear_model(frame, target=target, config=config, features=features)
    if recipe == "lightgbm":
        return fit_scoring_model(
            frame, target=target, config=config, overrides=overrides, features=features
        )
    raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")


def latest_rows(as_of: pd.Series, labels: np.ndarray, *, min_positives: int) -> np.ndarray:
    """Mask of the hold-out rows whose level calibration.base_rate latest matches: the latest
    snapshot date, and earlier dates, newest first, until the rows hold `min_positives`
    positive labels (or the whole hold-out does not).

    One date's rate rests on a handful of positives on a small company (a quarter of 300
    accounts at one date holds ~5 churns), and a level fitted to that moves every served
    probability by the noise of those few labels.
    """
    stamps = pd.to_datetime(pd.Series(as_of)).reset_index(drop=True)
    values = np.asarray(labels, dtype=float)
    mask = np.zeros(len(stamps), dtype=bool)
    for date in sorted(pd.unique(stamps), reverse=True):
        mask |= (stamps == date).to_numpy()
        if values[mask].sum() >= min_positives:
            break
    return mask


def _anchor_latest(
    calibrator: Calibrator | None,
    raw_of: Callable[[pd.DataFrame], np.ndarray],
    rows: pd.DataFrame,
    labels: np.ndarray,
    *,
    config: ExperimentConfig,
) -> Calibrator | None:
    """With calibration.base_rate latest, after the refit on every row: shift the level
    again so the served model's mean probability on the latest training dates (every
    account's rows) equals their observed rate.

    The refit model has learnt from the hold-out's (recent) labels too, so its scores move
    up or down with a rate that moved; the calibrator, fitted on the earlier model's scores,
    would count the move twice (measured: a 24-month company's expansion over-predicted by
    12 points at its first cut). The level is read on every account, not the hold-out's: a
    hold-out of a quarter of the accounts on a young company needs a year of dates to hold
    `latest_min_positives` positives, and its year-long average lagged a tripling expansion
    rate by 6-9 points. With a time hold-out the latest dates are the hold-out's anyway.
    """
    if calibrator is None or config.calibration.base_rate != "latest":
        return calibrator
    latest = latest_rows(
        rows["as_of"], labels, min_positives=config.calibration.latest_min_positives
    )
    rate = float(labels[latest].mean())
    probs = calibrator.predict(raw_of(rows[latest]))
    return calibrator.shifted(level_shift(probs, rate))


def _calibrate(
    raw: np.ndarray, labels: np.ndarray, *, config: ExperimentConfig, as_of: pd.Series
) -> tuple[Calibrator | None, str]:
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        # A hold-out with one class cannot calibrate; the booster's own sigmoid stands.
        return None, "none"
    method = "isotonic" if positives >= config.calibration.isotonic_min_positives else "sigmoid"
    calibrator = Calibrator.fit(raw, labels, method=method)
    if config.calibration.base_rate == "latest":
        # The served probabilities are summed into the revenue forecast: their level should
        # be the latest known rate, not the hold-out's average when the rate is moving.
        latest = latest_rows(as_of, labels, min_positives=config.calibration.latest_min_positives)
        shift = level_shift(calibrator.predict(raw[latest]), float(labels[latest].mean()))
        return calibrator.shifted(shift), f"{method}+latest"
    return calibrator, method
