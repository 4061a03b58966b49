"""Backtest of the NRR forecast: each past quarter forecast with models trained before it.

For every quarter start Q the data allows, churn and expansion models are fitted only on
snapshots whose label window closed by Q (as_of + horizon <= Q), the quarter-start snapshot
is scored, and the book at Q is simulated over the next HORIZONS (4) quarters as `nrr
forecast` does (the fan). At every horizon h whose quarters the data covers, the P10/P50/P90
of the book's cumulative NRR after h quarters (pooled and by segment) are compared with what
that book actually kept from Q to Q + 3h months, next to the naive baseline: the trailing
four-quarter mean NRR m compounded (m^h, spread sqrt(h) * sd * m^(h-1)). Horizon 1 is the
quarter's own NRR, as before.

How much history a quarter needs. With the full requirements a quarter is backtested when at
least FULL_TRAIN_DATES (6) labelled snapshot dates closed their label window by its start and
their rows hold FULL_POSITIVES (20) churned and 20 expanded accounts. A short history gets
fewer quarters, so the requirements step down REQUIREMENT_LADDER (6/20, 5/15, 4/10, 3/5) until
WANTED_QUARTERS (4) quarters fit or the minimum is reached: MIN_TRAIN_DATES (3) labelled dates
and MIN_POSITIVES (5) positives of each target before the quarter, plus a complete quarter of
data after it. With monthly snapshots and a 90-day horizon that is about 9 to 11 months of
history (5 to 6 months to close three label windows, up to 2 more to reach a quarter start,
3 for the quarter itself). The reduction is said in one line (`QuarterPlan.describe`); below
the minimum `plan_quarters` raises BacktestHistoryError naming what is missing and the first
quarter the history would allow. Inside each quarter the calibration hold-out follows the
training recipe's order of sacrifice (training/history.py) on that quarter's rows: the latest
dates when there are enough, held-out accounts otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from scipy.special import ndtri as norm_ppf

from experiments import DEFAULT_EXPERIMENT
from features.config import SnapshotConfig
from features.labels import labels_known_at
from models.clock import utc_now
from models.revenue.arr_tilt import fit_arr_tilt, latest_labelled
from models.revenue.forecast import (
    POOLED,
    backtest_horizons,
    naive_forecast,
    pinball_loss,
    simulate_fan,
)
from models.revenue.forecast_book import (
    account_expectations,
    book_at,
    history_at,
    quarter_of,
    simulation_inputs,
)
from models.revenue.nrr import account_flows, arr_timeline, decompose
from models.workspace import WORKDIR_HELP
from training.config import (
    LABEL_OF,
    REGISTERED_NAME,
    BoosterConfig,
    CalibrationConfig,
    ExperimentConfig,
    Target,
)
from training.fit import fit_scoring_model
from training.folds import NotEnoughHistoryError, calibration_split

if TYPE_CHECKING:
    from features.definition import FeatureDefinition

QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
HORIZONS = 4  # quarters ahead, as the report's fan
COLUMNS: tuple[str, ...] = (
    "quarter",
    "horizon",
    "quarter_start",
    "segment",
    "accounts",
    "p10",
    "p50",
    "p90",
    "actual",
    "covered",
    "pinball",
    "naive_p10",
    "naive_p50",
    "naive_p90",
    "naive_pinball",
    "train_rows",
    "scored_share",
)
Predictor = Callable[[pd.DataFrame], np.ndarray]
FitModel = Callable[[pd.DataFrame, Target], Predictor]

# Requirements on the training data before a quarter: (labelled snapshot dates whose label
# window closed by the quarter start, positives of each target among their rows), from the
# full requirement down to the minimum. See the module docstring.
FULL_TRAIN_DATES, FULL_POSITIVES = 6, 20
MIN_TRAIN_DATES, MIN_POSITIVES = 3, 5
REQUIREMENT_LADDER: tuple[tuple[int, int], ...] = ((6, 20), (5, 15), (4, 10), (3, 5))
WANTED_QUARTERS = 4

console = Console(stderr=True)


class BacktestHistoryError(NotEnoughHistoryError):
    """Not even one quarter can be backtested; the message says what is missing."""


class BacktestInputError(ValueError):
    """An input of the command is missing or does not belong to the data; one-line message."""


def quick_config(*, seed: int = 0, snapshot: SnapshotConfig | None = None) -> ExperimentConfig:
    """Fixed LightGBM settings for the backtest: no tuning, few rounds, one thread."""
    booster = BoosterConfig(num_threads=1, max_rounds=200, early_stopping_rounds=20)
    data: dict[str, object] = {"seed": seed, "booster": booster.model_dump()}
    if snapshot is not None:
        data["snapshot"] = snapshot.model_dump()
    return ExperimentConfig.model_validate(data)


class AdaptiveFitter:
    """Calibrated LightGBM with the training recipe, its hold-out fitted to each quarter's rows.

    As `training.history.plan_history` does for training (without its backtest folds, which
    one fit per quarter does not have): the latest `calibration.periods` dates calibrate when
    `calibration.min_fit_dates` earlier dates remain for the booster, then fewer dates, then
    held-out accounts. `reductions` counts the quarters per reduction so the command can say
    it once.
    """

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.reductions: dict[str, int] = {}
        self._planned: dict[tuple[int, pd.Timestamp], ExperimentConfig] = {}

    def _accounts(self) -> ExperimentConfig:
        calibration = self.config.calibration.model_copy(update={"holdout": "accounts"})
        return self.config.model_copy(update={"calibration": calibration})

    def _calibration(self, train: pd.DataFrame) -> CalibrationConfig:
        """plan_history's order of sacrifice for one fit: fewer hold-out dates, then accounts."""
        wanted = self.config.calibration
        if wanted.holdout == "accounts":
            return wanted
        for periods in range(wanted.periods, 0, -1):
            try:
                fit, _ = calibration_split(
                    train["as_of"], horizon_days=self.config.snapshot.horizon_days, periods=periods
                )
            except NotEnoughHistoryError:
                continue
            if pd.unique(train["as_of"].iloc[fit]).size >= wanted.min_fit_dates:
                return wanted.model_copy(update={"periods": periods})
        return wanted.model_copy(update={"holdout": "accounts"})

    def config_for(self, train: pd.DataFrame) -> ExperimentConfig:
        """The config whose calibration hold-out these training rows support (once per quarter)."""
        key = (len(train), pd.Timestamp(train["as_of"].max()))
        if key in self._planned:
            return self._planned[key]
        wanted = self.config.calibration
        calibration = self._calibration(train.reset_index(drop=True))
        if calibration.holdout != wanted.holdout:
            note = f"calibration on {wanted.account_share:.0%} held-out accounts (too few dates)"
        elif calibration.periods < wanted.periods:
            note = f"calibration on fewer than {wanted.periods} latest dates (too few dates)"
        else:
            note = ""
        if note:
            self.reductions[note] = self.reductions.get(note, 0) + 1
        config = self.config.model_copy(update={"calibration": calibration})
        self._planned[key] = config
        return config

    def __call__(self, train: pd.DataFrame, target: Target) -> Predictor:
        rows = train.reset_index(drop=True)
        config = self.config_for(rows)
        try:
            model = fit_scoring_model(rows, target=target, config=config)
        except NotEnoughHistoryError:
            model = fit_scoring_model(rows, target=target, config=self._accounts())
        return model.predict_proba

    def describe(self, quarters: int) -> str:
        """One line on the calibration reductions, '' when there were none."""
        return "; ".join(
            f"{note} in {n} of {quarters} quarter(s)" for note, n in self.reductions.items()
        )


def lightgbm_fitter(config: ExperimentConfig) -> FitModel:
    """Fit a calibrated LightGBM model with the training recipe; returns its predict_proba."""
    return AdaptiveFitter(config)


def training_rows(
    snapshots: pd.DataFrame, *, quarter_start: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Labelled snapshots whose label window closed by the quarter start."""
    # the cutoff: a row may train a model used at Q only if its outcome was known at Q
    return labels_known_at(snapshots, at=quarter_start, horizon_days=horizon_days)


def backtest_quarters(
    snapshots: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    horizon_days: int,
    min_train_dates: int,
    min_positives: int,
) -> list[pd.Timestamp]:
    """Quarter starts with a snapshot, a complete quarter after them, and enough training data."""
    dates = pd.DatetimeIndex(snapshots["as_of"].unique()).sort_values()
    starts = [d for d in dates if _is_quarter_start(d)]
    out = []
    for q in starts:
        if q + pd.DateOffset(months=3) > data_end:
            continue
        train = training_rows(snapshots, quarter_start=q, horizon_days=horizon_days)
        if train["as_of"].nunique() < min_train_dates:
            continue
        positives = [int(train[LABEL_OF[t]].astype(bool).sum()) for t in ("churn", "expansion")]
        if min(positives) >= min_positives:
            out.append(pd.Timestamp(q))
    return out


def _is_quarter_start(d: pd.Timestamp) -> bool:
    return d.day == 1 and d.month in (1, 4, 7, 10) and d.hour == 0


def _next_quarter_start(t: pd.Timestamp) -> pd.Timestamp:
    """The first quarter start on or after t."""
    start = pd.Timestamp(year=t.year, month=3 * ((t.month - 1) // 3) + 1, day=1)
    return start if start >= t else start + pd.DateOffset(months=3)


def _months(start: pd.Timestamp, end: pd.Timestamp) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


@dataclass(frozen=True)
class QuarterPlan:
    """The quarters to backtest and the training requirements the history supports."""

    quarters: list[pd.Timestamp]
    min_train_dates: int
    min_positives: int

    @property
    def reduced(self) -> bool:
        return (self.min_train_dates, self.min_positives) != (FULL_TRAIN_DATES, FULL_POSITIVES)

    def describe(self) -> str:
        """One line, e.g. '2 quarters backtested (need 4 labelled dates ...; first possible 2025Q3)'."""
        n = len(self.quarters)
        head = f"{n} quarter{'s' * (n != 1)} backtested"
        if not self.reduced:
            return head
        return (
            f"{head} (short history: need {self.min_train_dates} labelled dates and "
            f"{self.min_positives} churned and expanded accounts before a quarter, instead of "
            f"{FULL_TRAIN_DATES} and {FULL_POSITIVES}; first possible "
            f"{quarter_of(self.quarters[0])})"
        )


def _positives_before(
    snapshots: pd.DataFrame, *, starts: list[pd.Timestamp], horizon_days: int
) -> tuple[int, int]:
    """The most churned and expanded labelled rows any of these quarter starts could train on."""
    best = (0, 0)
    for q in starts:
        train = training_rows(snapshots, quarter_start=q, horizon_days=horizon_days)
        churned, expanded = (int(train[LABEL_OF[t]].astype(bool).sum()) for t in LABEL_OF)
        best = max(best, (churned, expanded), key=min)
    return best


def history_message(snapshots: pd.DataFrame, *, data_end: pd.Timestamp, horizon_days: int) -> str:
    """What is missing for even one backtest quarter, and how much history would do."""
    dates = pd.DatetimeIndex(snapshots["as_of"].unique()).sort_values()
    need = (
        f"a backtest quarter needs {MIN_TRAIN_DATES} labelled snapshot dates whose "
        f"{horizon_days}-day label window closed by its start, {MIN_POSITIVES} churned and "
        f"{MIN_POSITIVES} expanded accounts among their rows, and a complete quarter of data "
        "after it"
    )
    if len(dates) == 0:
        return f"not enough history for a forecast backtest: no snapshot rows; {need}"
    first = pd.Timestamp(dates[0])
    if not any(_is_quarter_start(pd.Timestamp(d)) for d in dates):
        return (
            f"not enough history for a forecast backtest: no snapshot date falls on a quarter "
            f"start ({first.date()} to {pd.Timestamp(dates[-1]).date()}); build monthly "
            "snapshots (snapshot.freq: month)"
        )
    step = dates[1] - dates[0] if len(dates) > 1 else pd.Timedelta(days=31)
    third = (
        pd.Timestamp(dates[MIN_TRAIN_DATES - 1])
        if len(dates) >= MIN_TRAIN_DATES
        else first + (MIN_TRAIN_DATES - 1) * step
    )
    possible = _next_quarter_start(third + pd.Timedelta(days=horizon_days))
    until = possible + pd.DateOffset(months=3)
    have = f"the data runs {first.date()} to {data_end.date()} ({_months(first, data_end)} months)"
    if until > data_end:
        return (
            f"not enough history for a forecast backtest: {have}; {need}, so the first "
            f"possible quarter is {quarter_of(possible)} and the data must run to "
            f"{until.date()} ({_months(first, until)} months of snapshots). Export a longer "
            "history."
        )
    starts = [
        pd.Timestamp(d)
        for d in dates
        if _is_quarter_start(pd.Timestamp(d)) and d + pd.DateOffset(months=3) <= data_end
    ]
    churned, expanded = _positives_before(snapshots, starts=starts, horizon_days=horizon_days)
    return (
        f"not enough history for a forecast backtest: {have}, but before any quarter at most "
        f"{churned} churned and {expanded} expanded accounts are labelled; {need}. Export a "
        "longer history or more accounts."
    )


def plan_quarters(
    snapshots: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    horizon_days: int,
    wanted: int = WANTED_QUARTERS,
) -> QuarterPlan:
    """The strictest requirements of REQUIREMENT_LADDER that give `wanted` quarters.

    A history too short for that gets the requirements that give the most quarters (the
    strictest of those); BacktestHistoryError when not even the minimum gives one.
    """
    plans = [
        QuarterPlan(
            backtest_quarters(
                snapshots,
                data_end=data_end,
                horizon_days=horizon_days,
                min_train_dates=dates,
                min_positives=positives,
            ),
            dates,
            positives,
        )
        for dates, positives in REQUIREMENT_LADDER
    ]
    most = max(len(p.quarters) for p in plans)
    if most == 0:
        raise BacktestHistoryError(
            history_message(snapshots, data_end=data_end, horizon_days=horizon_days)
        )
    return next(p for p in plans if len(p.quarters) >= min(wanted, most))


def actual_nrr(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    quarter_start: pd.Timestamp,
    data_end: pd.Timestamp,
    grace_days: int,
    horizon: int = 1,
) -> pd.DataFrame:
    """NRR the book at the quarter start realised over `horizon` quarters: segment, actual.

    Pooled ('All') and by segment: ARR at quarter start + 3 * horizon months of the accounts
    active at the quarter start (churned ones count 0, as in the fan) over their starting
    ARR. Horizon 1 is the quarter's NRR of `nrr.decompose`.
    """
    if horizon == 1:
        window = {
            "data_end": data_end,
            "freq": "quarter",
            "start": quarter_start,
            "end": quarter_start + pd.DateOffset(months=3),
            "grace_days": grace_days,
        }
        pooled = decompose(subscriptions, accounts, **window)  # type: ignore[arg-type]
        rows = [{"segment": POOLED, "actual": float(pooled["nrr"].iloc[0])}]
        if "segment" in accounts.columns:
            by = decompose(subscriptions, accounts, by="segment", **window)  # type: ignore[arg-type]
            rows += [
                {"segment": str(s), "actual": float(v)}
                for s, v in zip(by["segment"], by["nrr"], strict=True)
            ]
        return pd.DataFrame(rows).dropna(subset=["actual"])
    timeline = arr_timeline(subscriptions, data_end=data_end, grace_days=grace_days)
    end = quarter_start + pd.DateOffset(months=3 * horizon)
    flows = account_flows(timeline, boundaries=[quarter_start, end])
    flows = flows[flows["arr_start"] > 0]
    kept = flows["arr_start"] + flows["expansion_arr"] - flows["contraction_arr"]
    flows = flows.assign(kept=kept - flows["churned_arr"])
    rows = [{"segment": POOLED, "actual": _ratio(flows)}]
    if "segment" in accounts.columns:
        seg = accounts.loc[:, ["account_id", "segment"]].drop_duplicates("account_id")
        seg = seg.astype({"account_id": "string", "segment": "string"})
        merged = flows.astype({"account_id": "string"}).merge(seg, on="account_id", how="left")
        for segment, part in merged.dropna(subset=["segment"]).groupby("segment"):
            rows.append({"segment": str(segment), "actual": _ratio(part)})
    return pd.DataFrame(rows).dropna(subset=["actual"])


def _ratio(flows: pd.DataFrame) -> float:
    start = float(flows["arr_start"].sum())
    return float(flows["kept"].sum()) / start if start > 0 else float("nan")


def naive_table(
    history: dict[str, pd.DataFrame], *, quarter_start: pd.Timestamp, horizon: int = 1
) -> pd.DataFrame:
    """Trailing four-quarter NRR baseline at the quarter start: segment, naive_p10/50/90.

    Over `horizon` quarters the mean m compounds: P50 m^h, spread sqrt(h) * sd * m^(h-1)
    (independent quarters, first order); horizon 1 is the mean and sd themselves.
    """
    parts = [naive_forecast(history["pooled"], as_of=quarter_start, group_col=None)]
    if "segment" in history:
        parts.append(naive_forecast(history["segment"], as_of=quarter_start, group_col="segment"))
    frame = pd.concat(parts, ignore_index=True)
    mean, sd = frame["mean"].to_numpy(dtype=float), frame["sd"].to_numpy(dtype=float)
    centre = mean**horizon
    spread = np.sqrt(horizon) * sd * mean ** (horizon - 1)
    out = pd.DataFrame({"segment": frame["group"]})
    for q in QUANTILES:
        out[f"naive_p{q * 100:g}"] = centre + spread * float(norm_ppf(q))
    return out


def _scored_book(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    rows: pd.DataFrame,
    quarter_start: pd.Timestamp,
    predictors: dict[str, Predictor],
    grace_days: int,
) -> tuple[pd.DataFrame, float]:
    """The book at Q with predicted probabilities; accounts without a snapshot get the mean."""
    probs = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype("string").to_numpy(),
            "churn_probability": predictors["churn"](rows),
            "expansion_probability": predictors["expansion"](rows),
        }
    ).drop_duplicates("account_id")
    book = book_at(subscriptions, accounts, as_of=quarter_start, grace_days=grace_days)
    book = book.merge(probs, on="account_id", how="left")
    scored = float(book["churn_probability"].notna().mean()) if len(book) else 0.0
    for col in ("churn_probability", "expansion_probability"):
        book[col] = book[col].fillna(float(probs[col].mean()))
    return book, scored


def forecast_quarter(
    *,
    snapshots: pd.DataFrame,
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    quarter_start: pd.Timestamp,
    fit: FitModel,
    horizon_days: int,
    grace_days: int,
    draws: int,
    seed: int,
    horizons: int = 1,
) -> pd.DataFrame:
    """Cumulative NRR P10/P50/P90 pooled and by segment for horizons 1..`horizons`.

    From data before the quarter start only, with the fan of `nrr forecast` (later quarters'
    probabilities renewed toward the segment rates, common shock). One row per (horizon,
    segment).
    """
    train = training_rows(snapshots, quarter_start=quarter_start, horizon_days=horizon_days)
    predictors = {t: fit(train, t) for t in ("churn", "expansion")}
    rows = snapshots[snapshots["as_of"] == quarter_start].reset_index(drop=True)
    book, scored = _scored_book(
        subscriptions,
        accounts,
        rows=rows,
        quarter_start=quarter_start,
        predictors=predictors,
        grace_days=grace_days,
    )
    recent = train[latest_labelled(train["as_of"].to_numpy())]
    tilt = fit_arr_tilt(
        predictors["churn"](recent), recent[LABEL_OF["churn"]].astype(float), recent["arr"]
    )
    book["churn_probability"] = tilt.apply(book["churn_probability"], book["arr"])
    past = history_at(subscriptions, accounts, as_of=quarter_start, grace_days=grace_days)
    expectations = account_expectations(book, amount_model=past.amounts, rates=past.rates)
    inputs = simulation_inputs(expectations)
    if past.renewal is not None:
        inputs.update(past.renewal.probabilities(expectations, horizons))
    fan = simulate_fan(
        **inputs,
        quarters=horizons,
        draws=draws,
        seed=seed,
        quantiles=QUANTILES,
        shock=past.shock,
    ).summary
    nrr = fan[fan["metric"] == "nrr"]
    counts = book.groupby("segment").size()
    return pd.DataFrame(
        {
            "horizon": nrr["quarter"].astype(int).to_numpy(),
            "segment": nrr["group"].astype(str).to_numpy(),
            "accounts": [len(book) if g == POOLED else int(counts.get(g, 0)) for g in nrr["group"]],
            "p10": nrr["p10"].to_numpy(),
            "p50": nrr["p50"].to_numpy(),
            "p90": nrr["p90"].to_numpy(),
            "train_rows": len(train),
            "scored_share": scored,
        }
    )


def covered_horizons(
    quarter_start: pd.Timestamp, *, data_end: pd.Timestamp, horizons: int = HORIZONS
) -> int:
    """How many quarters after the quarter start the data covers, at most `horizons`."""
    return max(
        (
            h
            for h in range(1, horizons + 1)
            if quarter_start + pd.DateOffset(months=3 * h) <= data_end
        ),
        default=0,
    )


def _history(
    subscriptions: pd.DataFrame, accounts: pd.DataFrame, *, data_end: pd.Timestamp, grace_days: int
) -> dict[str, pd.DataFrame]:
    common = {"data_end": data_end, "freq": "quarter", "grace_days": grace_days}
    out = {"pooled": decompose(subscriptions, accounts, **common)}  # type: ignore[arg-type]
    if "segment" in accounts.columns:
        out["segment"] = decompose(subscriptions, accounts, by="segment", **common)  # type: ignore[arg-type]
    return out


def _score_cells(table: pd.DataFrame) -> pd.DataFrame:
    preds = table.loc[:, ["p10", "p50", "p90"]].to_numpy(dtype=float)
    naive = table.loc[:, ["naive_p10", "naive_p50", "naive_p90"]].to_numpy(dtype=float)
    actual = table["actual"].to_numpy(dtype=float)
    finite = np.isfinite(naive).all(axis=1)
    return table.assign(
        covered=(actual >= preds[:, 0]) & (actual <= preds[:, 2]),
        pinball=[pinball_loss(a, p, QUANTILES) for a, p in zip(actual, preds, strict=True)],
        naive_pinball=[
            pinball_loss(a, p, QUANTILES) if ok else np.nan
            for a, p, ok in zip(actual, naive, finite, strict=True)
        ],
    )


def backtest_forecast(
    *,
    snapshots: pd.DataFrame,
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    data_end: pd.Timestamp,
    horizon_days: int = 90,
    grace_days: int = 30,
    draws: int = 2_000,
    seed: int = 0,
    min_train_dates: int | None = None,
    min_positives: int | None = None,
    quarters: Sequence[pd.Timestamp] | None = None,
    fit: FitModel | None = None,
    horizons: int = HORIZONS,
) -> pd.DataFrame:
    """Tidy backtest table: one row per (horizon, quarter, segment), 'All' for the pooled book.

    `quarter` is the first quarter forecast (the origin); horizon h compares the cumulative
    NRR of the book at its start after h quarters, for every h up to `horizons` whose
    quarters the data covers.

    `fit` trains one target's model on training rows and returns its probability function
    (default: the training recipe's calibrated LightGBM with fixed parameters). Without
    `quarters` or requirements, the quarters come from `plan_quarters` (requirements fitted
    to the history; BacktestHistoryError below the minimum); with `min_train_dates` or
    `min_positives` those requirements hold as given (the other at its full value).
    """
    needed = ["account_id", "as_of", "labelled", LABEL_OF["churn"], LABEL_OF["expansion"]]
    missing = [c for c in needed if c not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots lack column(s) {missing}")
    if fit is None:
        fitter: FitModel = lightgbm_fitter(
            quick_config(
                seed=seed,
                snapshot=SnapshotConfig(horizon_days=horizon_days, grace_days=grace_days),
            )
        )
    else:
        fitter = fit
    if quarters is not None:
        chosen = list(quarters)
    elif min_train_dates is None and min_positives is None:
        chosen = plan_quarters(snapshots, data_end=data_end, horizon_days=horizon_days).quarters
    else:
        chosen = backtest_quarters(
            snapshots,
            data_end=data_end,
            horizon_days=horizon_days,
            min_train_dates=FULL_TRAIN_DATES if min_train_dates is None else min_train_dates,
            min_positives=FULL_POSITIVES if min_positives is None else min_positives,
        )
    history = _history(subscriptions, accounts, data_end=data_end, grace_days=grace_days)
    frames = []
    for i, q in enumerate(chosen):
        reach = covered_horizons(q, data_end=data_end, horizons=horizons)
        if reach == 0:
            continue
        forecast = forecast_quarter(
            snapshots=snapshots,
            subscriptions=subscriptions,
            accounts=accounts,
            quarter_start=q,
            fit=fitter,
            horizon_days=horizon_days,
            grace_days=grace_days,
            draws=draws,
            seed=seed + i,
            horizons=reach,
        )
        for h in range(1, reach + 1):
            actual = actual_nrr(
                subscriptions,
                accounts,
                quarter_start=q,
                data_end=data_end,
                grace_days=grace_days,
                horizon=h,
            )
            cells = (
                forecast[forecast["horizon"] == h]
                .merge(actual, on="segment")
                .merge(naive_table(history, quarter_start=q, horizon=h), on="segment", how="left")
            )
            frames.append(cells.assign(quarter=quarter_of(q), quarter_start=q))
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    table = _score_cells(pd.concat(frames, ignore_index=True))
    table = table.sort_values(["horizon", "quarter_start"], kind="stable")
    return table.loc[:, list(COLUMNS)].reset_index(drop=True)


def _figures(table: pd.DataFrame) -> dict[str, float]:
    pooled = table[table["segment"] == POOLED]
    cells = table[table["segment"] != POOLED]
    both = table.dropna(subset=["naive_pinball"])
    return {
        "quarters": float(len(pooled)),
        "pooled_coverage": float(pooled["covered"].mean()) if len(pooled) else float("nan"),
        "segment_coverage": float(cells["covered"].mean()) if len(cells) else float("nan"),
        "pinball": float(both["pinball"].mean()) if len(both) else float("nan"),
        "naive_pinball": float(both["naive_pinball"].mean()) if len(both) else float("nan"),
    }


def horizon_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per horizon: origins (pooled rows), pooled and segment coverage, pinball vs naive."""
    columns = ["horizon", "origins", "pooled_coverage", "segment_coverage"]
    columns += ["pinball", "naive_pinball"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for h, part in table.groupby(backtest_horizons(table), sort=True):
        figures = _figures(part)
        rows.append({"horizon": int(h), "origins": int(figures.pop("quarters")), **figures})
    return pd.DataFrame(rows, columns=columns)


def summarise(table: pd.DataFrame) -> dict[str, float]:
    """Headline figures of horizon 1 (quarters, pooled and segment coverage, pinball vs naive)
    and the same per horizon h as 'h{h}.origins', 'h{h}.pooled_coverage', ..."""
    horizons = table["horizon"] if "horizon" in table.columns else pd.Series(1, index=table.index)
    out = _figures(table[horizons == 1])
    for row in horizon_table(table).to_dict("records"):
        h = int(row.pop("horizon"))
        out.update({f"h{h}.{k}": float(v) for k, v in row.items()})
    return out


def horizon_rich_table(table: pd.DataFrame) -> Table:
    """The per-horizon figures as the table the command prints."""
    out = Table(title="Forecast backtest: cumulative NRR of the book, P10-P90")
    for name in ("horizon", "origins", "pooled coverage", "segment cells", "pinball", "naive"):
        out.add_column(name, justify="right")
    for row in horizon_table(table).itertuples(index=False):
        out.add_row(
            f"{row.horizon}Q",
            str(row.origins),
            f"{row.pooled_coverage:.0%}",
            f"{row.segment_coverage:.0%}" if np.isfinite(row.segment_coverage) else "n/a",
            f"{row.pinball:.4f}",
            f"{row.naive_pinball:.4f}",
        )
    return out


def _describe_definition(definition: FeatureDefinition) -> str:
    snap = definition.snapshot
    return f"{snap.freq}ly snapshots, {snap.horizon_days}-day horizon, {snap.grace_days}-day grace"


def feature_definition(
    *, snapshots: Path | None, workdir: Path | None, experiment: Path
) -> tuple[FeatureDefinition, str]:
    """The definition to build (or read) the features with, and where it came from.

    A snapshot file's own definition; else the champion's when a workspace store exists
    (never created just to look); else the experiment's snapshot settings.
    """
    from features.config import snapshot_settings
    from features.definition import FeatureDefinition, read_definition

    if snapshots is not None:
        if not snapshots.is_file():
            raise BacktestInputError(f"--snapshots {snapshots}: no such file")
        try:
            found = read_definition(snapshots)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise BacktestInputError(
                f"--snapshots {snapshots} is not a readable Parquet file: {exc}"
            ) from None
        if found is not None:
            return found, f"the definition stored in {snapshots.name}"
        default = FeatureDefinition(snapshot_settings(experiment))
        return default, (
            f"{snapshots.name} carries no definition: the settings of {experiment.name} assumed"
        )
    from models.workspace import Workspace

    settings = Workspace.resolve(workdir)
    if settings.store_exists():
        from models.workspace import setup_tracking
        from training.registry import champion_definition

        try:
            setup_tracking(settings)
            champion = champion_definition(REGISTERED_NAME[t] for t in ("churn", "expansion"))
        except Exception as exc:  # an unreadable store must not stop a backtest from the data
            console.print(
                f"[yellow]warning:[/yellow] cannot read the champion from "
                f"{settings.describe()}: {exc}"
            )
            champion = None
        if champion is not None:
            return champion, "the champion model's definition"
    return FeatureDefinition(snapshot_settings(experiment)), f"the settings of {experiment.name}"


def _same_company(frame: pd.DataFrame, accounts: pd.DataFrame, *, path: Path, data: Path) -> None:
    """A snapshot file must describe the accounts of the data (not another export's)."""
    ids = pd.Index(frame["account_id"].astype("string").unique())
    known = ids.isin(accounts["account_id"].astype("string"))
    if len(ids) == 0 or known.mean() < 0.5:
        raise BacktestInputError(
            f"--snapshots {path}: {int(known.sum())} of its {len(ids)} accounts are in --data "
            f"{data}; the snapshots come from another export (rebuild them with `nrr snapshots`)"
        )


def _load_inputs(
    data: Path, snapshots: Path | None, definition: FeatureDefinition
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """(snapshots, subscriptions, accounts, data_end); BacktestInputError on bad input."""
    from features.load_cli import load_or_exit
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    if not data.exists():
        raise BacktestInputError(f"--data {data}: no such file or folder")
    if snapshots is not None and not snapshots.is_file():
        raise BacktestInputError(f"--snapshots {snapshots}: no such file")
    source = definition.apply(load_or_exit(data, now=utc_now()))
    subscriptions = source.sql("SELECT * FROM subscriptions")
    accounts = source.sql("SELECT * FROM accounts")
    if snapshots is not None:
        try:
            frame = pd.read_parquet(snapshots)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise BacktestInputError(
                f"--snapshots {snapshots} is not a readable Parquet file: {exc}"
            ) from None
        needed = ["account_id", "as_of", "labelled", LABEL_OF["churn"], LABEL_OF["expansion"]]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise BacktestInputError(
                f"--snapshots {snapshots} lacks column(s) {missing}: not a file of `nrr snapshots`"
            )
        _same_company(frame, accounts, path=snapshots, data=data)
    else:
        spine = build_spine(source, freq=definition.snapshot.freq)
        frame = build_snapshots(source=source, spine=spine, config=definition.snapshot)
    return frame, subscriptions, accounts, source.data_end


def _write_atomic(table: pd.DataFrame, out_file: Path) -> None:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    try:
        if out_file.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
        tmp.replace(out_file)
    finally:
        tmp.unlink(missing_ok=True)


def backtest_command(
    data: Path = typer.Option(..., "--data", help="folder (or DuckDB file) of the contract tables"),
    out_file: Path = typer.Option(..., "--out", help="CSV (or .parquet) file for the table"),
    snapshots: Path | None = typer.Option(
        None, help="Parquet from `nrr snapshots` to reuse (its own feature definition is used)"
    ),
    draws: int = typer.Option(2_000, min=500, help="Monte Carlo draws per quarter"),
    seed: int = typer.Option(0, help="seed of the models and the Monte Carlo"),
    experiment: Path = typer.Option(
        DEFAULT_EXPERIMENT,
        "--experiment",
        help="experiment YAML whose snapshot settings are used when there is no champion",
    ),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """Backtest the NRR forecast on every past quarter the data allows; write the table.

    Features are built with the champion model's definition when the workspace has one,
    else with the experiment's snapshot settings; --snapshots files bring their own. A short
    history gets fewer quarters and lighter requirements (said in one line); below the
    minimum, one line says what is missing and the command exits 1 without writing.
    """
    from models.workspace import Workspace
    from training.backtest_logging import log_backtest_to_training_run

    try:
        definition, origin = feature_definition(
            snapshots=snapshots, workdir=workdir, experiment=experiment
        )
        console.print(f"features: {origin} ({_describe_definition(definition)})")
        frame, subscriptions, accounts, data_end = _load_inputs(data, snapshots, definition)
        horizon = definition.snapshot.horizon_days
        plan = plan_quarters(frame, data_end=data_end, horizon_days=horizon)
        if plan.reduced:
            console.print(plan.describe())
        fitter = AdaptiveFitter(quick_config(seed=seed, snapshot=definition.snapshot))
        table = backtest_forecast(
            snapshots=frame,
            subscriptions=subscriptions,
            accounts=accounts,
            data_end=data_end,
            horizon_days=horizon,
            grace_days=definition.snapshot.grace_days,
            draws=draws,
            seed=seed,
            quarters=plan.quarters,
            fit=fitter,
        )
    except (BacktestHistoryError, BacktestInputError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    except ValueError as exc:  # a fit or a split the history cannot support: one line, no trace
        console.print(f"[red]error:[/red] the backtest could not run on this history: {exc}")
        raise typer.Exit(code=1) from None
    if table.empty:
        console.print("[red]error:[/red] no backtest quarter produced a forecast")
        raise typer.Exit(code=1)
    if note := fitter.describe(len(plan.quarters)):
        console.print(note)
    _write_atomic(table, out_file)
    figures = summarise(table)
    console.print(horizon_rich_table(table))
    Console().print(str(out_file))
    settings = Workspace.resolve(workdir)
    try:
        run_id = log_backtest_to_training_run(out_file, figures, settings=settings)
    except LookupError as exc:
        console.print(f"[yellow]not logged to MLflow:[/yellow] {exc}")
    else:
        console.print(f"logged to the champion's training run {run_id}")


def register(app: typer.Typer) -> None:
    """Add `nrr backtest-forecast` to the root command."""
    app.command("backtest-forecast")(backtest_command)
