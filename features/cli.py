"""Subcommands of the features stage: simulate, validate, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
out = Console()


def _now() -> pd.Timestamp:
    # The CLI is the edge where "now" may enter: only as the default extraction time.
    return pd.Timestamp(datetime.now(UTC)).tz_localize(None)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def _parse_ts(value: str | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name}: {value!r} is not an ISO-8601 date or time") from exc
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def simulate(
    out_dir: Path = typer.Option(..., "--out", help="folder to write the tables into"),
    accounts: int = typer.Option(1500, min=10, help="number of customer accounts"),
    months: int = typer.Option(36, min=6, max=120, help="months of history"),
    seed: int = typer.Option(7, help="random seed; same seed, same company"),
    end: str = typer.Option("2026-10-01", help="extraction date of the simulated export"),
) -> None:
    """Write a simulated B2B SaaS company (all contract tables + event_map.yaml + oracle)."""
    from features.simulate import SimulationConfig, write_company

    config = SimulationConfig(
        accounts=accounts, months=months, seed=seed, end=_parse_ts(end, "--end")
    )
    with _progress() as progress:
        task = progress.add_task("simulating accounts", total=accounts)
        summary = write_company(
            out_dir, config, progress=lambda done: progress.update(task, completed=done)
        )
    out.print(summary.render())
    out.print(f"wrote {out_dir.resolve()}")


def validate(
    data: Path = typer.Option(..., "--data", help="folder of tables or a DuckDB file"),
    extracted_at: str | None = typer.Option(
        None, help="when the data was exported (default: manifest.yaml, else now)"
    ),
) -> None:
    """Check the tables against the data contract; exit 1 on errors."""
    from features.load import inspect_source

    report, _ = inspect_source(
        data, extracted_at=_parse_ts(extracted_at, "--extracted-at"), now=_now()
    )
    out.print(report.render())
    raise typer.Exit(code=0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("validate")(validate)
