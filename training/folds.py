"""Time-based splits: rolling-origin backtest folds and the calibration hold-out (never random)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from training.config import ExperimentConfig


class NotEnoughHistoryError(ValueError):
    """Too few snapshot dates for the requested time folds."""


@dataclass(frozen=True)
class Fold:
    """Train on rows whose label window closed before `cut`; test on as_of in [cut, end)."""

    index: int
    cut: pd.Timestamp
    end: pd.Timestamp | None
    train: np.ndarray
    test: np.ndarray


def _dates(as_of: pd.Series) -> list[pd.Timestamp]:
    return [pd.Timestamp(d) for d in sorted(pd.unique(as_of.dropna()))]


def time_folds(
    as_of: pd.Series,
    labelled: pd.Series,
    *,
    horizon_days: int,
    folds: int,
    spacing: int,
) -> list[Fold]:
    """The last `folds` cut dates, `spacing` snapshot dates apart, with row positions per fold."""
    if len(as_of) != len(labelled):
        raise ValueError("as_of and labelled must have the same length")
    stamps = pd.to_datetime(as_of).reset_index(drop=True)
    known = labelled.reset_index(drop=True).astype(bool).to_numpy()
    dates = _dates(stamps[known])
    needed = folds * spacing + 1
    if len(dates) < needed:
        raise NotEnoughHistoryError(
            f"{folds} folds {spacing} dates apart need at least {needed} labelled snapshot dates, "
            f"got {len(dates)}"
        )
    cuts = [dates[len(dates) - (folds - k) * spacing] for k in range(folds)]
    return folds_at(stamps, pd.Series(known), cuts=cuts, horizon_days=horizon_days)


def folds_at(
    as_of: pd.Series,
    labelled: pd.Series,
    *,
    cuts: list[pd.Timestamp],
    horizon_days: int,
) -> list[Fold]:
    """Folds at given cut dates (ascending): each trains on what was known at its cut.

    Fold k tests the labelled rows with as_of in [cut k, cut k+1) (the last: from its cut
    on) and trains on labelled rows whose label window closed by the cut.
    """
    if len(as_of) != len(labelled):
        raise ValueError("as_of and labelled must have the same length")
    if list(cuts) != sorted(set(cuts)):
        raise ValueError("cut dates must be distinct and ascending")
    stamps = pd.to_datetime(as_of).reset_index(drop=True)
    known = labelled.reset_index(drop=True).astype(bool).to_numpy()
    horizon = pd.Timedelta(days=horizon_days)
    result: list[Fold] = []
    for k, cut in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else None
        # The label window of a training row must close before the cut: no peeking.
        train = known & (stamps + horizon <= cut).to_numpy()
        test = known & (stamps >= cut).to_numpy()
        if end is not None:
            test &= (stamps < end).to_numpy()
        if not train.any():
            raise NotEnoughHistoryError(f"fold {k} (cut {cut.date()}) has no training rows")
        result.append(Fold(k, cut, end, np.flatnonzero(train), np.flatnonzero(test)))
    return result


def quarter_cuts(
    as_of: pd.Series, labelled: pd.Series, *, cuts: int, horizon_days: int
) -> list[pd.Timestamp]:
    """The last `cuts` quarter starts (first labelled snapshot date of a calendar quarter).

    Only quarters with a snapshot date whose label window closed before their start count:
    a cut must have something to train on.
    """
    stamps = pd.to_datetime(as_of).reset_index(drop=True)
    dates = _dates(stamps[labelled.reset_index(drop=True).astype(bool).to_numpy()])
    if not dates:
        raise NotEnoughHistoryError("no labelled snapshot dates")
    horizon = pd.Timedelta(days=horizon_days)
    starts: dict[pd.Period, pd.Timestamp] = {}
    for date in dates:
        starts.setdefault(date.to_period("Q"), date)
    usable = [d for d in starts.values() if dates[0] + horizon <= d]
    if len(usable) < cuts:
        raise NotEnoughHistoryError(
            f"{cuts} quarter-start cuts need {cuts} quarters with a labelled snapshot date and "
            f"{horizon_days} days of labelled history before them; this history has "
            f"{len(usable)} ({dates[0].date()} to {dates[-1].date()})"
        )
    return usable[len(usable) - cuts :]


def calibration_split(
    as_of: pd.Series, *, horizon_days: int, periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (fit, calibrate): the last `periods` dates calibrate, earlier closed windows fit."""
    stamps = pd.to_datetime(as_of).reset_index(drop=True)
    dates = _dates(stamps)
    if len(dates) <= periods:
        raise NotEnoughHistoryError(
            f"calibration hold-out of {periods} dates needs more than {periods} dates, got {len(dates)}"
        )
    start = dates[-periods]
    calibrate = (stamps >= start).to_numpy()
    # The booster's rows must have their label window closed before the hold-out begins.
    fit = (stamps + pd.Timedelta(days=horizon_days) <= start).to_numpy()
    if not fit.any():
        raise NotEnoughHistoryError(
            f"no rows with a label window closed before the calibration start {start.date()}"
        )
    return np.flatnonzero(fit), np.flatnonzero(calibrate)


def account_split(
    account_id: pd.Series, *, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (fit, calibrate): a seeded share of accounts, all their rows, calibrates.

    For histories too short to hold out the latest dates: whole accounts are held out, so no
    account's label is seen by both the booster and the calibrator.
    """
    ids = account_id.astype("string").reset_index(drop=True)
    unique = np.sort(ids.unique().to_numpy(dtype=object))
    if len(unique) < 2:
        raise NotEnoughHistoryError("an account hold-out needs at least two accounts")
    rng = np.random.default_rng(seed)
    n_cal = min(len(unique) - 1, max(1, round(share * len(unique))))
    held = set(rng.choice(unique, size=n_cal, replace=False).tolist())
    calibrate = ids.isin(held).to_numpy(dtype=bool)
    return np.flatnonzero(~calibrate), np.flatnonzero(calibrate)


def experiment_folds(rows: pd.DataFrame, config: ExperimentConfig, *, folds: int) -> list[Fold]:
    """`folds` rolling-origin folds over snapshot rows with the experiment's horizon and
    spacing: the backtest's (`backtest.folds`) and tuning's inner ones (`tuning.inner_folds`)."""
    return time_folds(
        rows["as_of"],
        rows["labelled"],
        horizon_days=config.snapshot.horizon_days,
        folds=folds,
        spacing=config.backtest.spacing,
    )
