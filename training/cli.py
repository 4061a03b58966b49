"""Subcommands of the training stage: train, promote, rollback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from experiments import DEFAULT_EXPERIMENT
from models.clock import utc_now

console = Console(stderr=True)
out = Console()

MODELS = {"churn": "nrr-churn", "expansion": "nrr-expansion"}


def _model_name(model: str) -> str:
    if model not in MODELS:
        raise typer.BadParameter(f"--model must be one of {sorted(MODELS)}, got {model!r}")
    return MODELS[model]


def _snapshots_from_data(data: Path, *, horizon_days: int, freq: str) -> pd.DataFrame:
    from features.config import SnapshotConfig
    from features.load_cli import load_or_exit
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    source = load_or_exit(data, now=utc_now())
    config = SnapshotConfig.model_validate({"freq": freq, "horizon_days": horizon_days})
    spine = build_spine(source, freq=config.freq)
    return build_snapshots(source=source, spine=spine, config=config)


def _summary(result: object) -> Table:
    from training.pipeline import TrainResult

    assert isinstance(result, TrainResult)
    table = Table(title=f"run {result.run_id}")
    for col in ("target", "scorer", "ROC-AUC", "PR-AUC", "Brier", "ECE", "early warning"):
        table.add_column(col)
    for target, outcome in result.outcomes.items():
        if not outcome.registered:
            table.add_row(target, "-", outcome.message, "", "", "", "")
            continue
        for scorer, m in outcome.pooled.items():
            cells = [m.get(k, float("nan")) for k in ("roc_auc", "pr_auc", "brier", "ece")]
            early = m.get("early_warning_share", float("nan"))
            table.add_row(target, scorer, *(f"{v:.3f}" for v in cells), f"{early:.3f}")
    return table


def train_command(
    data: Path | None = typer.Option(
        None, "--data", help="folder of tables (builds snapshots unless --snapshots is given)"
    ),
    snapshots: Path | None = typer.Option(
        None, "--snapshots", help="snapshot Parquet file from `nrr snapshots` to reuse"
    ),
    experiment: Path = typer.Option(DEFAULT_EXPERIMENT, "--experiment", help="experiment YAML"),
    as_of: str | None = typer.Option(None, "--as-of", help="train as if on this date"),
    workdir: Path | None = typer.Option(None, "--workdir", help="MLflow/Optuna store folder"),
) -> None:
    """Backtest, train, log and register the churn and expansion models; gate promotion."""
    from training.config import ExperimentConfigError, load_experiment
    from training.pipeline import as_of_view, train
    from training.tracking import TrainingSettings, get_settings

    if data is None and snapshots is None:
        raise typer.BadParameter("give --data, --snapshots, or both")
    try:
        config = load_experiment(experiment)
    except ExperimentConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    if snapshots is not None:
        # --data beside --snapshots still feeds the data fingerprint and, on a simulated
        # company, the oracle; the snapshots are not rebuilt.
        frame = pd.read_parquet(snapshots)
    else:
        assert data is not None
        frame = _snapshots_from_data(
            data, horizon_days=config.snapshot.horizon_days, freq=config.snapshot.freq
        )
    if as_of is not None:
        frame = as_of_view(
            frame, as_of=pd.Timestamp(as_of), horizon_days=config.snapshot.horizon_days
        )
    oracle_path = data / "oracle.parquet" if data is not None else None
    oracle = (
        pd.read_parquet(oracle_path) if oracle_path is not None and oracle_path.is_file() else None
    )
    settings = get_settings() if workdir is None else TrainingSettings(workdir=workdir)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("training", total=None)
        result = train(
            snapshots=frame, config=config, settings=settings, oracle=oracle, data_dir=data,
            progress=lambda msg: bar.update(task, description=msg),
        )  # fmt: skip
    out.print(_summary(result))
    for target, outcome in result.outcomes.items():
        out.print(_decision_line(target, outcome))
        if (warning := baseline_warning(target, outcome.pooled)) is not None:
            out.print(f"[yellow]warning:[/yellow] {warning}")


def baseline_warning(target: str, pooled: dict[str, dict[str, float]]) -> str | None:
    """A plain warning when the model ranks worse than a baseline on the same backtest rows.

    The gate compares models with the champion only; a first model (or a small company)
    can still lose to the logistic regression or the rules, and the user should know.
    """
    model = pooled.get("model", {}).get("roc_auc")
    if model is None:
        return None
    rivals = {
        name: scores["roc_auc"]
        for name, scores in pooled.items()
        if name in ("logistic", "rules") and scores.get("roc_auc") is not None
    }
    better = {name: auc for name, auc in rivals.items() if auc > model}
    if not better:
        return None
    best = max(better, key=lambda name: better[name])
    return (
        f"{target}: the model's backtest ROC-AUC {model:.3f} is below the {best} baseline "
        f"{better[best]:.3f} on the same rows; with little data try stronger regularisation "
        "(booster.params: min_data_in_leaf, num_leaves) or rely on the baseline's scores"
    )


def _decision_line(target: str, outcome: object) -> str:
    from training.pipeline import TargetOutcome

    assert isinstance(outcome, TargetOutcome)
    if not outcome.registered or outcome.decision is None:
        return f"{target}: not registered: {outcome.message}"
    verdict = "promoted to champion" if outcome.decision.promoted else "stays challenger"
    return f"{target}: version {outcome.version} {verdict} ({outcome.message})"


def promote_command(
    model: str = typer.Option(..., "--model", help="churn or expansion"),
    version: str = typer.Option(..., "--version", help="registered version number"),
    workdir: Path | None = typer.Option(None, "--workdir", help="MLflow store folder"),
) -> None:
    """Move the champion alias to a version by hand."""
    from mlflow import MlflowClient

    from training.registry import set_champion
    from training.tracking import TrainingSettings, get_settings, setup_tracking

    name = _model_name(model)
    setup_tracking(get_settings() if workdir is None else TrainingSettings(workdir=workdir))
    set_champion(MlflowClient(), name, version)
    out.print(f"{name}: champion -> version {version}")


def rollback_command(
    model: str = typer.Option(..., "--model", help="churn or expansion"),
    workdir: Path | None = typer.Option(None, "--workdir", help="MLflow store folder"),
) -> None:
    """Give the champion alias back to the previous champion."""
    from mlflow import MlflowClient

    from training.registry import rollback
    from training.tracking import TrainingSettings, get_settings, setup_tracking

    name = _model_name(model)
    setup_tracking(get_settings() if workdir is None else TrainingSettings(workdir=workdir))
    try:
        previous = rollback(MlflowClient(), name)
    except ValueError as exc:
        out.print(str(exc))
        raise typer.Exit(code=1) from None
    out.print(f"{name}: champion rolled back to version {previous}")


def register(app: typer.Typer) -> None:
    """Attach the training subcommands to the root `nrr` app."""
    app.command("train")(train_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
