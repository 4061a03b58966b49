"""`nrr drift`: PSI of the latest snapshot against the champion models' training data.

Exit code 0 whenever the check ran, whatever drift it found (drift is for a person to
judge, not a failure); 1 when it could not run: no champion, a champion without a stored
drift reference, unreadable data, or no snapshot on or before --as-of.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from experiments import DEFAULT_EXPERIMENT
from features.cli import parse_time_option
from features.definition import FeatureDefinition
from models.clock import utc_now
from models.workspace import WORKDIR_HELP, Workspace
from training.config import REGISTERED_NAME, ExperimentConfigError, Target
from training.drift_check import (
    DRIFT_EXPERIMENT,
    DriftCheckError,
    ModelDrift,
    check_drift,
    load_champions,
    log_to_mlflow,
    point_at_store,
    snapshot_rows,
)

console = Console(stderr=True)
out = Console()

_COLOURS = {"stable": "green", "moderate": "yellow", "significant": "red", "untrained": "dim"}


def drift_table(result: ModelDrift, *, as_of: pd.Timestamp, rows: int) -> Table:
    """The ranked rich table of one model's PSI."""
    window = result.reference.meta
    span = f" ({window['as_of_min']}..{window['as_of_max']})" if "as_of_min" in window else ""
    table = Table(
        title=f"{result.name} v{result.version}: snapshot {as_of.date()} ({rows} accounts) "
        f"vs {result.reference.rows} training rows{span}"
    )
    for col, justify in (("#", "right"), ("feature", "left"), ("PSI", "right"), ("status", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for rank, r in enumerate(result.table.itertuples(), start=1):
        colour = _COLOURS.get(str(r.status), "white")
        status = f"[{colour}]{r.status}[/{colour}]"
        table.add_row(str(rank), str(r.feature), f"{float(r.psi):.3f}", status)
    low, high = result.reference.thresholds
    table.caption = f"stable < {low} <= moderate < {high} <= significant"
    return table


def drift_command(
    data: Path | None = typer.Option(None, "--data", help="folder of tables (builds the snapshot)"),
    snapshots: Path | None = typer.Option(None, "--snapshots", help="snapshot Parquet file"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="check the latest snapshot on or before"
    ),
    model: str | None = typer.Option(None, "--model", help="churn or expansion (default: both)"),
    experiment: Path = typer.Option(DEFAULT_EXPERIMENT, "--experiment", help="experiment YAML"),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI"),
    out_file: Path | None = typer.Option(
        None, "--out", help="JSON summary (default: WORKDIR/drift_summary.json)"
    ),
) -> None:
    """PSI per feature of the latest snapshot vs each champion's training data; logs to MLflow.

    Exit 0 whenever the check ran (whatever drift it found), 1 when it could not run.
    """
    from features.load_cli import load_or_exit
    from training.config import load_experiment

    if (data is None) == (snapshots is None):
        raise typer.BadParameter("give exactly one of --data or --snapshots")
    if model is not None and model not in REGISTERED_NAME:
        raise typer.BadParameter(f"--model must be one of {sorted(REGISTERED_NAME)}, got {model!r}")
    try:
        config = load_experiment(experiment)
    except ExperimentConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = Workspace.resolve(workdir, tracking_uri)
    targets: list[Target] = [model] if model is not None else ["churn", "expansion"]  # type: ignore[list-item]
    when = parse_time_option(as_of, "--as-of")
    # The data's problems first (a validation report names them all), then the store's.
    source = None if data is None else load_or_exit(data, now=utc_now())
    try:
        point_at_store(settings)
        # A snapshot file carries its own features: read it (and report it) before the models.
        given = (
            None
            if snapshots is None
            else snapshot_rows(
                None, snapshots, as_of=when, definition=FeatureDefinition(config.snapshot)
            )
        )
        champions, skipped = load_champions(targets, explicit=model is not None)
        stored = (c.definition for c in champions if c.definition is not None)
        definition = next(stored, None) or FeatureDefinition(config.snapshot)
        rows = (
            given
            if given is not None
            else snapshot_rows(source, None, as_of=when, definition=definition)
        )
        results = check_drift(rows, champions, config=config)
    except DriftCheckError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    checked = pd.Timestamp(pd.to_datetime(rows["as_of"]).max())
    for result in results:
        out.print(drift_table(result, as_of=checked, rows=len(rows)))
    for target, reason in skipped.items():
        console.print(f"[yellow]{target} skipped:[/yellow] {reason}")
    run_ids = log_to_mlflow(results, settings=settings, as_of=checked, rows=len(rows))
    summary = {
        "as_of": str(checked.date()),
        "rows": len(rows),
        "models": {r.target: r.to_dict() for r in results},
        "skipped": skipped,
        "mlflow_runs": dict(zip([r.target for r in results], run_ids, strict=True)),
    }
    path = out_file or settings.workdir / "drift_summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    console.print(f"wrote {path} and logged to MLflow experiment {DRIFT_EXPERIMENT!r}")


def register(app: typer.Typer) -> None:
    """Attach `nrr drift` to the root app."""
    app.command("drift")(drift_command)
