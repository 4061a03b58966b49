"""Fit the training recipe to the history a company has.

The experiment file asks for the full recipe (e.g. 3 backtest folds, a 3-date calibration
hold-out, Optuna on 2 inner folds). A company with less history cannot support all of it.
Rather than fail, the plan keeps as much of the recipe as the labelled snapshot dates allow,
in a fixed order of sacrifice:

1. fewer backtest folds (down to 1), keeping the calibration hold-out;
2. fewer calibration dates (down to 1), as long as the booster still has
   `calibration.min_fit_dates` earlier dates to learn from;
3. calibration and early stopping on held-out accounts instead of the latest dates;
4. a shorter spacing between cuts (the test window of each fold).

Tuning runs on the rows before the first cut with as many inner folds as those rows allow,
or is switched off. Every reduction is said in one line (`HistoryPlan.describe`) and logged
with the run. Below the minimum (no labelled date whose label window closed before a later
labelled date) training stops before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.config import ExperimentConfig
from training.folds import NotEnoughHistoryError, calibration_split, time_folds


@dataclass(frozen=True)
class HistoryPlan:
    """The recipe the history supports: the adapted config and what was reduced."""

    config: ExperimentConfig
    labelled_dates: int
    first_date: pd.Timestamp
    last_date: pd.Timestamp
    reductions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reduced(self) -> bool:
        return bool(self.reductions)

    def describe(self) -> str:
        """One line: e.g. '9 labelled dates: 1 fold (of 3), tuning off, calibration on ...'."""
        head = (
            f"{self.labelled_dates} labelled snapshot dates "
            f"({self.first_date.date()} to {self.last_date.date()})"
        )
        if not self.reductions:
            return f"{head}: the full recipe of the experiment"
        return f"{head}: " + ", ".join(self.reductions)

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "labelled_dates": self.labelled_dates,
            "first_labelled_date": str(self.first_date.date()),
            "last_labelled_date": str(self.last_date.date()),
            "backtest_folds": c.backtest.folds,
            "backtest_spacing": c.backtest.spacing,
            "calibration_holdout": c.calibration.holdout,
            "calibration_periods": c.calibration.periods,
            "tuning_trials": c.tuning.trials,
            "tuning_inner_folds": c.tuning.inner_folds,
            "reductions": list(self.reductions),
            "summary": self.describe(),
        }


def _labelled_dates(as_of: pd.Series, labelled: pd.Series) -> list[pd.Timestamp]:
    known = labelled.to_numpy(dtype=bool)
    return [pd.Timestamp(d) for d in np.sort(pd.unique(pd.to_datetime(as_of)[known]))]


def _calibration_fits(
    as_of: pd.Series, *, horizon_days: int, holdout: str, periods: int, min_fit_dates: int
) -> bool:
    """Can `fit_scoring_model` split these rows with this hold-out?"""
    if holdout == "accounts":
        return len(as_of) > 0
    try:
        fit, _ = calibration_split(as_of, horizon_days=horizon_days, periods=periods)
    except NotEnoughHistoryError:
        return False
    return pd.unique(as_of.iloc[fit]).size >= min_fit_dates


def _folds_fit(
    rows: pd.DataFrame,
    *,
    horizon_days: int,
    folds: int,
    spacing: int,
    holdout: str,
    periods: int,
    min_fit_dates: int,
    min_train_dates: int = 1,
) -> bool:
    """Do `folds` cuts exist, each with enough training dates for the calibration hold-out?"""
    try:
        made = time_folds(
            rows["as_of"], rows["labelled"], horizon_days=horizon_days, folds=folds, spacing=spacing
        )
    except NotEnoughHistoryError:
        return False
    return all(
        len(f.test) > 0
        and rows["as_of"].iloc[f.train].nunique() >= min_train_dates
        and _calibration_fits(
            rows["as_of"].iloc[f.train].reset_index(drop=True),
            horizon_days=horizon_days,
            holdout=holdout,
            periods=periods,
            min_fit_dates=min_fit_dates,
        )  # fmt: skip
        for f in made
    )


def _candidates(config: ExperimentConfig) -> list[tuple[int, int, str, int]]:
    """(spacing, folds, holdout, periods) from the full recipe down, in order of preference."""
    wanted = config.backtest
    periods = config.calibration.periods
    out: list[tuple[int, int, str, int]] = []
    for spacing in range(wanted.spacing, 0, -1):
        for folds in range(wanted.folds, 0, -1):
            out += [(spacing, folds, "time", p) for p in range(periods, 0, -1)]
        out += [(spacing, folds, "accounts", periods) for folds in range(wanted.folds, 0, -1)]
    if config.calibration.holdout == "accounts":
        out = [c for c in out if c[2] == "accounts"]
    return out


def minimum_history_message(dates: list[pd.Timestamp], *, horizon_days: int, freq: str) -> str:
    """What is missing when not even one fold with one training date fits."""
    have = "no labelled snapshot dates" if not dates else (
        f"{len(dates)} labelled snapshot date(s) ({dates[0].date()} to {dates[-1].date()})"
    )  # fmt: skip
    return (
        f"not enough history to train: {have}. Training needs a labelled snapshot date whose "
        f"{horizon_days}-day label window closed before a later labelled date, so the labelled "
        f"dates must span at least {horizon_days} days; as the last {horizon_days} days of "
        f"data are never labelled, that is at least {2 * horizon_days} days of data after the "
        f"first {freq}ly snapshot. Export a longer history or shorten snapshot.horizon_days."
    )


def plan_history(snapshots: pd.DataFrame, config: ExperimentConfig) -> HistoryPlan:
    """The richest version of the experiment's recipe that the labelled history supports."""
    if "labelled" not in snapshots.columns or "as_of" not in snapshots.columns:
        raise ValueError("snapshot frame needs the columns 'as_of' and 'labelled'")
    rows = snapshots.loc[snapshots["labelled"].astype(bool), ["as_of", "labelled"]]
    rows = rows.sort_values("as_of", kind="stable").reset_index(drop=True)
    horizon = config.snapshot.horizon_days
    dates = _labelled_dates(rows["as_of"], rows["labelled"])
    min_fit = config.calibration.min_fit_dates
    # First every fold trains on at least `min_fit_dates` dates; only as a last resort on
    # fewer, so that the documented minimum history still trains.
    chosen = next(
        (
            (c, floor)
            for floor in (min_fit, 1)
            for c in _candidates(config)
            if _folds_fit(
                rows,
                horizon_days=horizon,
                folds=c[1],
                spacing=c[0],
                holdout=c[2],
                periods=c[3],
                min_fit_dates=min_fit,
                min_train_dates=floor,
            )  # fmt: skip
        ),
        None,
    )
    if chosen is None:
        raise NotEnoughHistoryError(
            minimum_history_message(dates, horizon_days=horizon, freq=config.snapshot.freq)
        )
    (spacing, folds, holdout, periods), floor = chosen
    reductions: list[str] = []
    if folds < config.backtest.folds:
        reductions.append(f"{folds} backtest fold{'s' * (folds > 1)} (of {config.backtest.folds})")
    if spacing < config.backtest.spacing:
        reductions.append(f"cuts {spacing} date(s) apart (of {config.backtest.spacing})")
    if holdout == "accounts" and config.calibration.holdout == "time":
        share = config.calibration.account_share
        reductions.append(
            f"calibration on {share:.0%} held-out accounts (too few dates for a time hold-out)"
        )
    elif periods < config.calibration.periods:
        reductions.append(f"calibration on {periods} date(s) (of {config.calibration.periods})")
    if floor < min_fit:
        reductions.append(f"the first fold trains on fewer than {min_fit} snapshot dates")
    adapted = config.model_copy(
        update={
            "backtest": config.backtest.model_copy(update={"folds": folds, "spacing": spacing}),
            "calibration": config.calibration.model_copy(
                update={"holdout": holdout, "periods": periods}
            ),
        }
    )
    adapted, tuning_note = _plan_tuning(rows, adapted)
    if tuning_note:
        reductions.append(tuning_note)
    return HistoryPlan(adapted, len(dates), dates[0], dates[-1], tuple(reductions))


def tuning_rows(rows: pd.DataFrame, config: ExperimentConfig) -> pd.DataFrame:
    """Labelled rows whose label window closed before the first backtest cut (tuning's data)."""
    first_cut = time_folds(
        rows["as_of"], rows["labelled"], horizon_days=config.snapshot.horizon_days,
        folds=config.backtest.folds, spacing=config.backtest.spacing,
    )[0].cut  # fmt: skip
    closed = rows["as_of"] + pd.Timedelta(days=config.snapshot.horizon_days) <= first_cut
    return rows[closed].reset_index(drop=True)


def _plan_tuning(rows: pd.DataFrame, config: ExperimentConfig) -> tuple[ExperimentConfig, str]:
    tuning = config.tuning
    if tuning.trials == 0 or not tuning.search_space:
        return config, ""
    early = tuning_rows(rows, config)
    calibration = config.calibration
    holdouts = [calibration.holdout] + (["accounts"] if calibration.holdout == "time" else [])
    for holdout in holdouts:
        for inner in range(tuning.inner_folds, 0, -1):
            if not _folds_fit(
                early, horizon_days=config.snapshot.horizon_days, folds=inner,
                spacing=config.backtest.spacing, holdout=holdout, periods=calibration.periods,
                min_fit_dates=calibration.min_fit_dates,
                min_train_dates=calibration.min_fit_dates,
            ):  # fmt: skip
                continue
            notes = []
            if inner < tuning.inner_folds:
                notes.append(f"tuning on {inner} inner fold (of {tuning.inner_folds})")
            if holdout != calibration.holdout:
                notes.append("tuning's inner fits calibrate on held-out accounts")
            if not notes:
                return config, ""
            update: dict[str, Any] = {"inner_folds": inner}
            if holdout != calibration.holdout:
                update["holdout"] = holdout
            tuned = config.model_copy(update={"tuning": tuning.model_copy(update=update)})
            return tuned, ", ".join(notes)
    off = {"tuning": tuning.model_copy(update={"trials": 0})}
    return config.model_copy(update=off), "tuning off (too few dates before the first cut)"
