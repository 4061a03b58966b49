"""`nrr interventions`: how many at-risk accounts the plays saved, against matched accounts.

Scores the book at every month start the report needs with the workspace's champion models
(as `nrr forecast` does; serving.intervention_outcomes), then prints the comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from models.clock import utc_now
from models.workspace import WORKDIR_HELP

if TYPE_CHECKING:
    from models.outcomes.interventions import InterventionReport

console = Console(stderr=True)
out = Console()


def interventions(
    data: Path = typer.Option(..., "--data", help="folder of tables or a DuckDB file"),
    out_file: Path | None = typer.Option(None, "--out", help="write the results to this .csv"),
    units_file: Path | None = typer.Option(
        None, "--units", help="write every evaluated play with its matched controls' rates (.csv)"
    ),
    outcomes: Path | None = typer.Option(None, "--outcomes", help="outcomes YAML"),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """Per risk level and play: at-risk accounts saved 90 days after a play, against accounts
    of the same risk and churn probability without one (the `interventions` table)."""
    from features.load_cli import load_or_exit
    from models.outcomes.cli import _check_csv, _config, _write_csv
    from serving.forecast_cli import _score, _served_models
    from serving.intervention_outcomes import intervention_report, recorded_plays

    _check_csv(out_file)
    _check_csv(units_file, option="--units")
    spec = _config(outcomes).interventions
    source = load_or_exit(data, now=utc_now())
    plays = recorded_plays(source, workdir)
    if plays.empty:
        raise typer.BadParameter(
            f"no plays to evaluate: {data} has no interventions rows and the workspace has "
            "none recorded (export the plays as an interventions table, or record them with "
            "POST /v1/interventions)",
            param_hint="--data",
        )
    settings, bundle = _served_models(workdir)
    report, model_source = intervention_report(
        source,
        plays,
        spec=spec,
        score=lambda rows: _score(rows, settings=settings, bundle=bundle),
        definition=bundle.feature_definition(),
    )
    _print(report, model_source)
    _write_csv(report.results, out_file)
    _write_csv(report.units, units_file)


def _pp(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{100 * value:+.1f}"


def _print(report: InterventionReport, model_source: str) -> None:
    from models.outcomes.interventions import interventions_reading

    view = Table(title="at-risk accounts saved 90 days after a play vs matched accounts (pp)")
    for col in (
        "risk level",
        "play",
        "treated",
        "saved",
        "matched saved",
        "effect [95%]",
        "retained effect [95%]",
    ):
        view.add_column(col, justify="left" if col in ("risk level", "play") else "right")
    for r in report.results.itertuples(index=False):
        view.add_row(
            r.risk_level,
            r.play,
            f"{r.treated:,}",
            f"{r.saved_rate:.0%}",
            f"{r.control_saved_rate:.0%}",
            f"{_pp(r.saved_effect)} [{_pp(r.saved_low)}, {_pp(r.saved_high)}]",
            f"{_pp(r.retained_effect)} [{_pp(r.retained_low)}, {_pp(r.retained_high)}]",
        )
    out.print(view)
    out.print(
        f"left out: {report.pending} with the outcome after the data, {report.not_at_risk} "
        f"not at risk at the start, {report.unscored} without ARR at the start, "
        f"{report.unmatched} without a comparison account. {model_source}"
    )
    out.print(interventions_reading(report))


def register(app: typer.Typer) -> None:
    """Add `nrr interventions` to the root command."""
    app.command("interventions")(interventions)
