"""`nrr timing`, `nrr winback` and `nrr interventions`: what happened after the risk.

Each reads the export (validated like `nrr validate`) and experiments/outcomes.yaml (or
--outcomes FILE); none needs a trained model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from models.clock import utc_now

if TYPE_CHECKING:
    from models.outcomes.config import OutcomesConfig
    from models.outcomes.tables import OutcomeTables

console = Console(stderr=True)
out = Console()
OUTCOMES_HELP = "outcomes YAML (default experiments/outcomes.yaml)"


def _config(path: Path | None) -> OutcomesConfig:
    from models.outcomes.config import OutcomesConfigError, load_outcomes_config

    try:
        return load_outcomes_config(path)
    except OutcomesConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--outcomes") from None


def _check_csv(path: Path | None, *, option: str = "--out") -> None:
    from features.cli import check_out_path

    if path is None:
        return
    if path.suffix != ".csv":
        raise typer.BadParameter(f"{option} {path}: use a .csv file name")
    check_out_path(path, option=option)


def _write_csv(frame: pd.DataFrame, path: Path | None) -> None:
    from features.cli import write_failed

    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    except OSError as exc:
        raise write_failed(path, exc) from None
    out.print(f"wrote {path.resolve()}")


def _tables(data: Path, outcomes: Path | None) -> OutcomeTables:
    from features.config import SnapshotConfig
    from features.load_cli import load_or_exit
    from models.outcomes.tables import build_outcome_tables

    config = _config(outcomes)
    source = load_or_exit(data, now=utc_now())
    console.print("churn events, inferred reasons and the win-back backtest ...")
    return build_outcome_tables(source, config=config, grace_days=SnapshotConfig().grace_days)


def timing(
    data: Path = typer.Option(..., "--data", help="folder of tables or a DuckDB file"),
    out_file: Path | None = typer.Option(None, "--out", help="write the table to this .csv"),
    outcomes: Path | None = typer.Option(None, "--outcomes", help=OUTCOMES_HELP),
) -> None:
    """Churn timing cohorts: share of churned ARR and logos by tenure band at churn, pooled,
    by segment and by ICP fit."""
    from models.outcomes.timing import timing_reading

    _check_csv(out_file)
    tables = _tables(data, outcomes)
    frame = tables.timing
    bands = list(dict.fromkeys(frame["band"]))
    ranges = dict(zip(frame["band"], frame["tenure_days"], strict=False))
    view = Table(title=f"churn timing, share of churned ARR (of logos) ({_period(tables)})")
    view.add_column("group")
    view.add_column("churned logos / ARR", justify="right")
    for band in bands:
        view.add_column(f"{band} (days {ranges[band]})", justify="right")
    for (split, group), part in frame.groupby(["split", "group"], sort=False):
        label = "all accounts" if split == "all" else f"{split} {group}"
        cells = [
            f"{_share(r.arr_share)} ({_share(r.logo_share)})" for r in part.itertuples(index=False)
        ]
        total = f"{int(part['churned_logos'].sum()):,} / {part['churned_arr'].sum():,.0f}"
        view.add_row(label, total, *cells)
    out.print(view)
    if not tables.icp_fit_present:
        out.print("accounts.icp_fit is absent or empty: no split by ICP fit")
    out.print(timing_reading(frame))
    _write_csv(frame, out_file)


def _share(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.0%}"


def _period(tables: OutcomeTables) -> str:
    if tables.first_churn is None:
        return "no churn in the data"
    return f"churns {tables.first_churn:%Y-%m-%d} to {tables.data_end:%Y-%m-%d}"


def winback(
    data: Path = typer.Option(..., "--data", help="folder of tables or a DuckDB file"),
    out_file: Path | None = typer.Option(None, "--out", help="write the whole list to this .csv"),
    top: int = typer.Option(20, min=1, help="rows to print"),
    outcomes: Path | None = typer.Option(None, "--outcomes", help=OUTCOMES_HELP),
) -> None:
    """Win-back list: accounts churned in the last 12 months, ranked by the chance they come
    back, with the approach and timing matched to the inferred churn reason."""
    _check_csv(out_file)
    tables = _tables(data, outcomes)
    frame = tables.winback
    test = tables.winback_backtest
    if test is None:
        out.print("backtest: too few past returns to test a model; the base rate ranks nothing")
    else:
        out.print(
            f"backtest over {len(test.cuts)} quarterly cut dates ({test.rows:,} candidates, "
            f"{test.returns:,} returns): ROC-AUC {test.auc:.3f} "
            f"(90% interval {test.auc_low:.3f}-{test.auc_high:.3f}); predicted "
            f"{test.mean_predicted:.1%} vs observed {test.observed_rate:.1%} returning"
        )
    view = Table(title=f"win-back list at {tables.data_end:%Y-%m-%d} ({len(frame):,} accounts)")
    for col in (
        "#",
        "account",
        "segment",
        "churned",
        "ARR",
        "p(return)",
        "reason",
        "approach",
        "when",
    ):
        view.add_column(col)
    for row in frame.head(top).itertuples(index=False):
        when = {
            "now": "now",
            "wait": f"from {row.window_start:%Y-%m-%d}",
            "window passed": "window passed",
        }[row.timing]
        view.add_row(
            str(row.rank),
            str(row.name if pd.notna(row.name) else row.account_id),
            str(row.segment),
            f"{row.churn_at:%Y-%m-%d}",
            f"{row.churned_arr:,.0f}",
            f"{row.return_probability:.1%}",
            row.reason,
            row.approach,
            when,
        )
    out.print(view)
    _write_csv(frame, out_file)


def register(app: typer.Typer) -> None:
    """Add the outcome commands to the root command."""
    app.command("timing")(timing)
    app.command("winback")(winback)
