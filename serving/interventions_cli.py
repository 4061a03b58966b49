"""`nrr interventions`: how many at-risk accounts the plays saved, against matched accounts.

Scores the book at every month start the report needs with the workspace's champion models
(as `nrr forecast` does), then `models.outcomes.interventions.evaluate_interventions`.
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
    from features.source import DataSource
    from models.outcomes.config import InterventionSpec
    from models.outcomes.interventions import InterventionReport

console = Console(stderr=True)
out = Console()


def _scores(
    source: DataSource, dates: list[pd.Timestamp], workdir: Path | None
) -> tuple[pd.DataFrame, str, int]:
    from features.snapshots import build_snapshots
    from features.spine import build_spine
    from serving.forecast_cli import _score, _served_models

    settings, bundle = _served_models(workdir)
    definition = bundle.feature_definition()
    source = definition.apply(source)
    spine = build_spine(source, start=min(dates), end=max(dates))
    spine = spine[pd.to_datetime(spine["as_of"]).isin(dates)].reset_index(drop=True)
    console.print(f"features and scores at {len(dates)} month starts ({len(spine):,} rows) ...")
    rows = build_snapshots(source=source, spine=spine, config=definition.snapshot)
    scored, model_source = _score(rows, settings=settings, bundle=bundle)
    frame = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype("string").to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"]).astype("datetime64[ns]").to_numpy(),
            "churn_probability": scored["churn_probability"].to_numpy(dtype=float),
            "health_band": scored["health_band"].astype("string").to_numpy(),
        }
    )
    return frame, model_source, definition.snapshot.grace_days


def recorded_plays(source: DataSource, workdir: Path | None) -> pd.DataFrame:
    """The export's interventions table plus the plays recorded through the API."""
    from models.outcomes.store import read_plays
    from models.workspace import Workspace

    parts = [read_plays(Workspace.resolve(workdir).interventions_path)]
    if source.has("interventions"):
        parts.append(source.sql("SELECT * FROM interventions"))
    plays = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    plays["account_id"] = plays["account_id"].astype("string")
    plays["started_at"] = pd.to_datetime(plays["started_at"]).astype("datetime64[ns]")
    return plays.drop_duplicates(["account_id", "play", "started_at"]).reset_index(drop=True)


def intervention_report(
    source: DataSource, plays: pd.DataFrame, *, spec: InterventionSpec, workdir: Path | None
) -> tuple[InterventionReport, str]:
    """Score the month starts the plays need and compare them with matched accounts."""
    from models.outcomes.interventions import evaluate_interventions, score_dates
    from models.revenue.nrr import arr_timeline

    dates = score_dates(plays, outcome_days=spec.outcome_days, data_end=source.data_end)
    if not dates:
        raise typer.BadParameter("every play starts after the end of the data", param_hint="--data")
    scores, model_source, grace_days = _scores(source, dates, workdir)
    subs = source.sql("SELECT * FROM subscriptions")
    subs = subs.assign(
        start_at=pd.to_datetime(subs["start_at"]).astype("datetime64[ns]"),
        end_at=pd.to_datetime(subs["end_at"]).astype("datetime64[ns]"),
    )
    timeline = arr_timeline(subs, data_end=source.data_end, grace_days=grace_days)
    report = evaluate_interventions(
        plays, scores=scores, timeline=timeline, spec=spec, data_end=source.data_end
    )
    return report, model_source


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
    report, model_source = intervention_report(source, plays, spec=spec, workdir=workdir)
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
