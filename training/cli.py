"""Subcommands of the training stage: train, promote, rollback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from experiments import DEFAULT_EXPERIMENT
from features.cli import parse_time_option
from features.config import SnapshotConfig
from features.load_cli import read_parquet_or_exit
from features.log_progress import log_line
from models.clock import utc_now
from models.workspace import WORKDIR_HELP

console = Console(stderr=True)
out = Console()

MODELS = {"churn": "nrr-churn", "expansion": "nrr-expansion"}


def _model_name(model: str) -> str:
    if model not in MODELS:
        raise typer.BadParameter(f"--model must be one of {sorted(MODELS)}, got {model!r}")
    return MODELS[model]


def _snapshots_from_data(data: Path, *, config: SnapshotConfig) -> tuple[pd.DataFrame, Any]:
    """Snapshots built with the experiment's settings, and the definition they were built with."""
    from features.definition import FeatureDefinition
    from features.load_cli import load_or_exit
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    source = load_or_exit(data, now=utc_now())
    spine = build_spine(source, freq=config.freq)
    frame = build_snapshots(source=source, spine=spine, config=config)
    return frame, FeatureDefinition.of_source(source, config)


def _definition_of_file(path: Path, config: SnapshotConfig) -> Any:
    """The definition stored in a snapshot file; it must agree with the experiment's labels."""
    from features.definition import FeatureDefinition, read_definition

    found = read_definition(path)
    if found is None:
        console.print(
            f"[yellow]warning:[/yellow] {path} carries no feature definition (written before "
            "`nrr snapshots` stored one); the experiment's snapshot settings are recorded"
        )
        return FeatureDefinition(config)
    if found.snapshot.horizon_days != config.horizon_days:
        console.print(
            f"[red]error:[/red] {path} was built with a {found.snapshot.horizon_days}-day label "
            f"horizon, the experiment says {config.horizon_days}: rebuild the snapshots with "
            "`nrr snapshots --experiment` or train with --data"
        )
        raise typer.Exit(1)
    return found


def _run_inputs(
    data: Path | None, snapshots: Path | None, experiment: Path, oracle_file: Path | None
) -> tuple[Any, pd.DataFrame | None, pd.DataFrame, Any]:
    """What `nrr train` and `nrr evaluate` both start from: the experiment, the oracle, the
    snapshots (read from --snapshots, else built from --data) and their feature definition."""
    from training.config import ExperimentConfigError, load_experiment

    try:
        config = load_experiment(experiment)
    except ExperimentConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    oracle = read_parquet_or_exit(oracle_file, "--oracle") if oracle_file is not None else None
    if snapshots is not None:
        # --data beside --snapshots still feeds the data fingerprint; no rebuild.
        frame = read_parquet_or_exit(snapshots, "--snapshots")
        return config, oracle, frame, _definition_of_file(snapshots, config.snapshot)
    assert data is not None
    frame, definition = _snapshots_from_data(data, config=config.snapshot)
    return config, oracle, frame, definition


@contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """A spinner in a terminal; in a log, one timestamped line per step instead."""
    if not console.is_terminal:
        started = time.monotonic()
        yield lambda msg: log_line(console, time.monotonic() - started, msg)
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("training", total=None)
        yield lambda msg: bar.update(task, description=msg)


def _summary(result: object) -> Table:
    from training.pipeline import TrainResult

    assert isinstance(result, TrainResult)
    table = Table(title=f"run {result.run_id} (backtest, out of time; * = registered recipe)")
    for col in ("target", "scorer", "ROC-AUC", "PR-AUC", "Brier", "ECE", "early warning"):
        table.add_column(col)
    names = {"model": "lightgbm", "logistic": "logistic"}
    for target, outcome in result.outcomes.items():
        if not outcome.registered:
            table.add_row(target, "-", outcome.message, "", "", "", "")
            continue
        for scorer, m in outcome.pooled.items():
            cells = [m.get(k, float("nan")) for k in ("roc_auc", "pr_auc", "brier", "ece")]
            early = m.get("early_warning_share", float("nan"))
            label = names.get(scorer, scorer)
            label += " *" if label == outcome.recipe else ""
            table.add_row(target, label, *(f"{v:.3f}" for v in cells), f"{early:.3f}")
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
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    oracle_file: Path | None = typer.Option(
        None,
        "--oracle",
        help="simulated companies only: true probabilities (oracle.parquet of `nrr simulate`) "
        "scored beside the model in the backtest",
    ),
) -> None:
    """Backtest, train, log and register the churn and expansion models; gate promotion."""
    from models.workspace import Workspace
    from training.folds import NotEnoughHistoryError
    from training.history import plan_history
    from training.pipeline import as_of_view, train

    if data is None and snapshots is None:
        raise typer.BadParameter("give --data, --snapshots, or both")
    config, oracle, frame, definition = _run_inputs(data, snapshots, experiment, oracle_file)
    if as_of is not None:
        frame = as_of_view(
            frame,
            as_of=parse_time_option(as_of, "--as-of"),
            horizon_days=config.snapshot.horizon_days,
        )
    try:
        plan = plan_history(frame, config)
    except (NotEnoughHistoryError, ValueError) as exc:
        # Before any store, run or file exists: nothing is left behind.
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"history: {plan.describe()}")
    settings = Workspace.resolve(workdir)
    console.print(f"workspace: {settings.describe()}")
    with _progress() as say:
        result = train(
            snapshots=frame, config=config, settings=settings, oracle=oracle, data_dir=data,
            progress=say, plan=plan, definition=definition,
        )  # fmt: skip
    out.print(_summary(result))
    for target, outcome in result.outcomes.items():
        out.print(_decision_line(target, outcome))
        if (warning := baseline_warning(target, outcome.pooled, served=outcome.recipe)) is not None:
            out.print(f"[yellow]warning:[/yellow] {warning}")


# ROC-AUC gaps below this are noise on a backtest of a few thousand rows: no warning.
WARN_MARGIN = 0.005


def baseline_warning(
    target: str, pooled: dict[str, dict[str, float]], *, served: str | None = "lightgbm"
) -> str | None:
    """A plain warning when the served recipe ranks worse than a baseline on the same rows.

    Training serves the better of LightGBM and the logistic regression, so the one rival
    left is the rule-based score; a small company's models can lose to it, and the user
    should know before relying on them.
    """
    column = "logistic" if served == "logistic" else "model"
    name = "logistic regression" if served == "logistic" else "model"
    model = pooled.get(column, {}).get("roc_auc")
    if model is None:
        return None
    rivals = {
        rival: scores["roc_auc"]
        for rival, scores in pooled.items()
        if rival in ("model", "logistic", "rules")
        and rival != column
        and scores.get("roc_auc") is not None
    }
    better = {rival: auc for rival, auc in rivals.items() if auc > model + WARN_MARGIN}
    if not better:
        return None
    best = max(better, key=lambda rival: better[rival])
    label = {"model": "LightGBM", "logistic": "logistic", "rules": "rules"}[best]
    return (
        f"{target}: the served {name}'s backtest ROC-AUC {model:.3f} is below the {label} "
        f"baseline {better[best]:.3f} on the same rows; with little data try stronger "
        "regularisation (booster.params: min_data_in_leaf, num_leaves), more history, or "
        "`nrr score --rules-only`"
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
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """Move the champion alias to a version by hand."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import set_champion

    name = _model_name(model)
    _open_store(workdir)
    try:
        set_champion(MlflowClient(), name, version)
    except MlflowException:
        console.print(f"[red]error:[/red] {name} has no version {version!r}{_versions_hint(name)}")
        raise typer.Exit(1) from None
    out.print(f"{name}: champion -> version {version}")


def _open_store(workdir: Path | None) -> None:
    """Point MLflow at the workspace's existing store; a missing one is an error, not a new one."""
    from models.workspace import Workspace, setup_tracking

    workspace = Workspace.resolve(workdir)
    if not workspace.store_exists():
        console.print(
            f"[red]error:[/red] no {workspace.describe()}: run `nrr train` first, or pass the "
            "--workdir (NRR_WORKDIR) it used"
        )
        raise typer.Exit(1)
    setup_tracking(workspace)


def _versions_hint(name: str) -> str:
    from mlflow import MlflowClient

    try:
        found = sorted(
            (v.version for v in MlflowClient().search_model_versions(f"name='{name}'")), key=int
        )
    except Exception:  # the hint is a courtesy; the error line stands without it
        return ""
    return f" (registered: {', '.join(map(str, found))})" if found else " (none registered yet)"


def rollback_command(
    model: str = typer.Option(..., "--model", help="churn or expansion"),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """Give the champion alias back to the previous champion."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import rollback

    name = _model_name(model)
    _open_store(workdir)
    try:
        previous = rollback(MlflowClient(), name)
    except MlflowException:
        console.print(f"[red]error:[/red] {name} is not registered in this workspace")
        raise typer.Exit(code=1) from None
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    out.print(f"{name}: champion rolled back to version {previous}")


def evaluate_command(
    data: Path | None = typer.Option(
        None, "--data", help="folder of tables (builds snapshots unless --snapshots is given)"
    ),
    snapshots: Path | None = typer.Option(
        None, "--snapshots", help="snapshot Parquet file from `nrr snapshots` to reuse"
    ),
    cuts: int = typer.Option(4, "--cuts", min=1, help="past quarter starts to train and score at"),
    experiment: Path = typer.Option(DEFAULT_EXPERIMENT, "--experiment", help="experiment YAML"),
    oracle_file: Path | None = typer.Option(
        None, "--oracle", help="simulated companies only: oracle.parquet scored beside the model"
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="folder for evaluation.csv, predictions and notes"
    ),
    resamples: int = typer.Option(
        500, "--resamples", min=1, help="account bootstrap resamples of each interval"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the bootstrap"),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """Train the recipe at past quarter starts and score the quarter after each, with
    account-bootstrap intervals: model vs logistic vs rules (vs oracle); logged to MLflow."""
    from models.rules.config import load_rules_config
    from models.workspace import Workspace
    from training.evaluate import labelled_rows
    from training.evaluate_cuts import (
        evaluation_folds,
        evaluation_text,
        log_to_mlflow,
        run_evaluation,
        write_outputs,
    )
    from training.folds import NotEnoughHistoryError
    from training.history import plan_history

    if data is None and snapshots is None:
        raise typer.BadParameter("give --data, --snapshots, or both")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise typer.BadParameter(f"--out {out_dir} exists and is not a folder")
    config, oracle, frame, _ = _run_inputs(data, snapshots, experiment, oracle_file)
    settings = Workspace.resolve(workdir)
    try:
        # Checked before any store or run exists: a too-short history leaves nothing behind.
        evaluation_folds(labelled_rows(frame), plan_history(frame, config).config, cuts=cuts)
    except (NotEnoughHistoryError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"workspace: {settings.describe()}")
    with _progress() as say:
        result = run_evaluation(
            frame, config=config, rules=load_rules_config(), cuts=cuts, oracle=oracle,
            resamples=resamples, seed=seed, progress=say,
            log=lambda run, cfg: log_to_mlflow(run, cfg, settings=settings),
        )  # fmt: skip
    # Plain text, never wrapped: the table is read in terminals and in log files alike.
    typer.echo(evaluation_text(result))
    if out_dir is not None:
        write_outputs(result, out_dir)
        out.print(f"wrote {out_dir}/evaluation.csv, predictions and notes")


def register(app: typer.Typer) -> None:
    """Attach the training subcommands to the root `nrr` app."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
