"""Backtest of the NRR forecast: each past quarter forecast with models trained before it.

For every quarter start Q the data allows, churn and expansion models are fitted only on
snapshots whose label window closed by Q (as_of + horizon <= Q), the quarter-start snapshot
is scored, the book at Q is simulated, and the P10/P50/P90 of NRR (pooled and by segment)
are compared with the quarter's actual NRR from the subscriptions, next to the naive
baseline (trailing four-quarter average NRR).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.console import Console

from models.clock import utc_now
from models.revenue.forecast import POOLED, naive_forecast, pinball_loss, simulate_outcomes
from models.revenue.forecast_book import (
    account_expectations,
    book_at,
    history_at,
    quarter_of,
    simulation_inputs,
)
from models.revenue.nrr import decompose
from models.workspace import WORKDIR_HELP
from training.config import LABEL_OF, BoosterConfig, ExperimentConfig, Target
from training.fit import fit_scoring_model

QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
COLUMNS: tuple[str, ...] = (
    "quarter",
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

console = Console(stderr=True)


def quick_config(*, seed: int = 0) -> ExperimentConfig:
    """Fixed LightGBM settings for the backtest: no tuning, few rounds, one thread."""
    booster = BoosterConfig(num_threads=1, max_rounds=200, early_stopping_rounds=20)
    return ExperimentConfig.model_validate({"seed": seed, "booster": booster.model_dump()})


def lightgbm_fitter(config: ExperimentConfig) -> FitModel:
    """Fit a calibrated LightGBM model with the training recipe; returns its predict_proba."""

    def fit(train: pd.DataFrame, target: Target) -> Predictor:
        return fit_scoring_model(
            train.reset_index(drop=True), target=target, config=config
        ).predict_proba

    return fit


def training_rows(
    snapshots: pd.DataFrame, *, quarter_start: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Labelled snapshots whose label window closed by the quarter start."""
    # the cutoff: a row may train a model used at Q only if its outcome was known at Q
    closed = snapshots["as_of"] + pd.Timedelta(days=horizon_days) <= quarter_start
    labelled = snapshots["labelled"].astype("boolean").fillna(False).astype(bool)
    return snapshots.loc[closed & labelled].sort_values(["as_of", "account_id"], kind="stable")


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
    starts = [d for d in dates if d.day == 1 and d.month in (1, 4, 7, 10) and d.hour == 0]
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


def actual_nrr(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    quarter_start: pd.Timestamp,
    data_end: pd.Timestamp,
    grace_days: int,
) -> pd.DataFrame:
    """The quarter's realised NRR, pooled ('All') and by segment: segment, actual."""
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


def naive_table(history: dict[str, pd.DataFrame], *, quarter_start: pd.Timestamp) -> pd.DataFrame:
    """Trailing four-quarter NRR baseline at the quarter start: segment, naive_p10/50/90."""
    parts = [naive_forecast(history["pooled"], as_of=quarter_start, group_col=None)]
    if "segment" in history:
        parts.append(naive_forecast(history["segment"], as_of=quarter_start, group_col="segment"))
    frame = pd.concat(parts, ignore_index=True)
    names = {"group": "segment", "p10": "naive_p10", "p50": "naive_p50", "p90": "naive_p90"}
    return frame.rename(columns=names).loc[:, list(names.values())]


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
) -> pd.DataFrame:
    """NRR P10/P50/P90 pooled and by segment for one quarter, from data before its start."""
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
    past = history_at(subscriptions, accounts, as_of=quarter_start, grace_days=grace_days)
    expectations = account_expectations(book, amount_model=past.amounts, rates=past.rates)
    result = simulate_outcomes(
        **simulation_inputs(expectations),
        draws=draws,
        seed=seed,
        quantiles=QUANTILES,
        shock=past.shock,
    )
    nrr = result.summary[result.summary["metric"] == "nrr"]
    counts = book.groupby("segment").size()
    return pd.DataFrame(
        {
            "segment": nrr["group"].astype(str).to_numpy(),
            "accounts": [len(book) if g == POOLED else int(counts.get(g, 0)) for g in nrr["group"]],
            "p10": nrr["p10"].to_numpy(),
            "p50": nrr["p50"].to_numpy(),
            "p90": nrr["p90"].to_numpy(),
            "train_rows": len(train),
            "scored_share": scored,
        }
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
    min_train_dates: int = 6,
    min_positives: int = 20,
    quarters: Sequence[pd.Timestamp] | None = None,
    fit: FitModel | None = None,
) -> pd.DataFrame:
    """Tidy backtest table: one row per (quarter, segment) with 'All' for the pooled book.

    `fit` trains one target's model on training rows and returns its probability function
    (default: the training recipe's calibrated LightGBM with fixed parameters).
    """
    needed = ["account_id", "as_of", "labelled", LABEL_OF["churn"], LABEL_OF["expansion"]]
    missing = [c for c in needed if c not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots lack column(s) {missing}")
    fitter = fit if fit is not None else lightgbm_fitter(quick_config(seed=seed))
    chosen = (
        list(quarters)
        if quarters is not None
        else backtest_quarters(
            snapshots,
            data_end=data_end,
            horizon_days=horizon_days,
            min_train_dates=min_train_dates,
            min_positives=min_positives,
        )
    )
    history = _history(subscriptions, accounts, data_end=data_end, grace_days=grace_days)
    frames = []
    for i, q in enumerate(chosen):
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
        )
        actual = actual_nrr(
            subscriptions, accounts, quarter_start=q, data_end=data_end, grace_days=grace_days
        )
        cells = forecast.merge(actual, on="segment").merge(
            naive_table(history, quarter_start=q), on="segment", how="left"
        )
        frames.append(cells.assign(quarter=quarter_of(q), quarter_start=q))
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    table = _score_cells(pd.concat(frames, ignore_index=True))
    return table.loc[:, list(COLUMNS)].reset_index(drop=True)


def summarise(table: pd.DataFrame) -> dict[str, float]:
    """Headline figures: quarters, pooled and segment coverage, mean pinball vs naive."""
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


def backtest_command(
    data: Path = typer.Option(..., "--data", help="folder (or DuckDB file) of the contract tables"),
    out_file: Path = typer.Option(..., "--out", help="CSV (or .parquet) file for the table"),
    snapshots: Path | None = typer.Option(None, help="Parquet from `nrr snapshots` to reuse"),
    draws: int = typer.Option(2_000, min=500, help="Monte Carlo draws per quarter"),
    seed: int = typer.Option(0, help="seed of the models and the Monte Carlo"),
    workdir: Path | None = typer.Option(
        None, "--workdir", help=WORKDIR_HELP
    ),
) -> None:
    """Backtest the NRR forecast on every past quarter the data allows; write the table."""
    from features.config import SnapshotConfig
    from features.load_cli import load_or_exit
    from features.snapshots import build_snapshots
    from features.spine import build_spine
    from models.workspace import Workspace
    from training.backtest_logging import log_backtest_to_training_run

    now = utc_now()
    source = load_or_exit(data, now=now)
    config = SnapshotConfig.model_validate({})
    if snapshots is not None:
        frame = pd.read_parquet(snapshots)
    else:
        frame = build_snapshots(source=source, spine=build_spine(source), config=config)
    table = backtest_forecast(
        snapshots=frame,
        subscriptions=source.sql("SELECT * FROM subscriptions"),
        accounts=source.sql("SELECT * FROM accounts"),
        data_end=source.data_end,
        horizon_days=config.horizon_days,
        grace_days=config.grace_days,
        draws=draws,
        seed=seed,
    )
    if table.empty:
        raise typer.BadParameter("--data: not enough history for any backtest quarter")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    if out_file.suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    else:
        table.to_csv(tmp, index=False)
    tmp.replace(out_file)
    figures = summarise(table)
    console.print(
        f"{figures['quarters']:.0f} quarters; pooled P10-P90 coverage "
        f"{figures['pooled_coverage']:.0%}, segment cells {figures['segment_coverage']:.0%}; "
        f"pinball {figures['pinball']:.4f} vs naive {figures['naive_pinball']:.4f}"
    )
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
