"""Subcommands of the rule-based layer: `nrr health` and `nrr renewals`.

Without a trained model the health normaliser (percentile anchors, power-user quantile)
is fitted on the snapshots being scored, so percentiles are relative to this book.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from features.cli import parse_time_option
from models.clock import utc_now

console = Console(stderr=True)
out = Console()


def _grid_freq(as_of: pd.Timestamp) -> str:
    if as_of != as_of.normalize():
        raise typer.BadParameter(f"--as-of {as_of} must be a date at 00:00 (snapshot grid)")
    if as_of.day == 1:
        return "month"
    if as_of.day_of_week == 0:
        return "week"
    raise typer.BadParameter(f"--as-of {as_of.date()} must be a month start or a Monday")


def _snapshots_at(
    data: Path, as_of: pd.Timestamp | None, *, with_previous: bool = False
) -> tuple[pd.DataFrame, pd.Timestamp, pd.DataFrame | None]:
    """Load and validate the data, then build features for the active accounts at as_of.

    with_previous: also the same accounts' features at the previous grid date (one period
    earlier, accounts active then), built in the same pass, for health_change.
    """
    from features.config import SnapshotConfig
    from features.load_cli import load_or_exit
    from features.snapshots import build_features
    from features.spine import build_spine

    source = load_or_exit(data, now=utc_now())
    if as_of is None:  # latest month start with data
        as_of = source.data_end.normalize().replace(day=1)
    freq = _grid_freq(as_of)
    if as_of > source.data_end:
        raise typer.BadParameter(f"--as-of {as_of.date()} is after the end of the data")
    spine = build_spine(source, start=as_of, end=as_of, freq=freq)  # type: ignore[arg-type]
    if spine.empty:
        raise typer.BadParameter(f"no account has ARR > 0 at {as_of.date()}")
    config = SnapshotConfig.model_validate({"freq": freq})
    before = as_of - (pd.DateOffset(weeks=1) if freq == "week" else pd.DateOffset(months=1))
    if with_previous:
        then = build_spine(source, start=before, end=before, freq=freq)  # type: ignore[arg-type]
        then = then[then["account_id"].isin(set(spine["account_id"]))]
        spine = pd.concat([spine, then], ignore_index=True)
    built = build_features(source=source, spine=spine, config=config)
    when = pd.to_datetime(built["as_of"])
    rows = built[when == as_of].reset_index(drop=True)
    previous = built[when == before].reset_index(drop=True) if with_previous else None
    return rows, as_of, previous


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, parse_dates=["as_of"])
    raise typer.BadParameter(f"{path}: expected a .csv or .parquet file")


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    from features.cli import write_parquet_atomic

    if path.suffix == ".parquet":
        write_parquet_atomic(frame, path)
    elif path.suffix == ".csv":
        lists = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list)).any()]
        flat = frame.assign(**{c: frame[c].map("; ".join) for c in lists})
        path.parent.mkdir(parents=True, exist_ok=True)
        flat.to_csv(path, index=False)
    else:
        raise typer.BadParameter(f"--out {path}: use a .csv or .parquet file name")


def health(
    data: Path = typer.Option(..., "--data", help="folder of tables or a DuckDB file"),
    as_of: str = typer.Option(..., "--as-of", help="snapshot date (a month start or a Monday)"),
    out_file: Path = typer.Option(..., "--out", help=".csv or .parquet file to write"),
    rules: Path | None = typer.Option(None, help="rules YAML (default experiments/rules.yaml)"),
    previous: Path | None = typer.Option(
        None,
        help="earlier `nrr health` output, for health_change and the 15-point alert "
        "(default: the health scores at the previous grid date, computed from the data)",
    ),
) -> None:
    """Score health, PQA, risk signals, expansion triggers and plays for every active account."""
    from features.cli import check_out_path, write_failed
    from models.rules.config import load_rules_config
    from models.rules.health import HealthNormaliser
    from models.rules.plays import assess_accounts, health_history

    if out_file.suffix not in (".csv", ".parquet"):
        raise typer.BadParameter(f"--out {out_file}: use a .csv or .parquet file name")
    check_out_path(out_file)
    config = load_rules_config(rules)
    snaps, day, before = _snapshots_at(
        data, parse_time_option(as_of, "--as-of"), with_previous=previous is None
    )
    normaliser = HealthNormaliser.fit(snaps, config=config)
    console.print("health percentiles are relative to the accounts scored (no trained normaliser)")
    if previous is not None:
        earlier = _read_table(previous)
    else:  # the previous grid date's scores, with the same rules and normaliser
        earlier = health_history(before, config=config, normaliser=normaliser)
    scored = assess_accounts(snaps, config=config, normaliser=normaliser, previous=earlier)
    keys = [c for c in ("account_id", "as_of", "csm_owner", "segment", "arr") if c in snaps]
    frame = pd.concat([snaps[keys], scored], axis=1)
    try:
        _write_table(frame, out_file)
    except OSError as exc:
        raise write_failed(out_file, exc) from None
    counts = frame["health_band"].value_counts().to_dict()
    out.print(
        f"{len(frame):,} accounts at {day.date()}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    out.print(f"wrote {out_file.resolve()}")


def renewals(
    data: Path = typer.Option(..., "--data", help="folder of tables or a DuckDB file"),
    within: int = typer.Option(90, min=0, help="days ahead to list"),
    as_of: str | None = typer.Option(None, "--as-of", help="default: latest month start"),
    rules: Path | None = typer.Option(None, help="rules YAML (default experiments/rules.yaml)"),
    monthly: bool = typer.Option(
        False,
        "--monthly",
        help="list month-to-month accounts at high risk instead (no renewal date: they can "
        "leave at any month end), lowest health first",
    ),
) -> None:
    """Print the renewal calendar of committed terms (days left, ARR at stake, health, alerts,
    owner), or with --monthly the month-to-month accounts at high risk."""
    from models.rules.config import load_rules_config
    from models.rules.health import HealthNormaliser, score_health
    from models.rules.renewals import monthly_at_risk, renewal_calendar

    config = load_rules_config(rules)
    snaps, day, _ = _snapshots_at(data, parse_time_option(as_of, "--as-of"))
    normaliser = HealthNormaliser.fit(snaps, config=config)
    scores = score_health(snaps, config=config, normaliser=normaliser)
    if monthly:
        view = monthly_at_risk(
            snaps, as_of=day, health=scores, churn_probability=None, config=config
        )
        title = f"Month-to-month accounts at high risk at {day.date()}"
        out.print(_calendar_table(view, title=title))
        return
    calendar = renewal_calendar(
        snaps, as_of=day, within_days=within, health=scores, churn_probability=None, config=config
    )
    out.print(_calendar_table(calendar, title=f"Renewals within {within} days of {day.date()}"))


def _calendar_table(calendar: pd.DataFrame, *, title: str) -> Table:
    table = Table(title=title)
    for name in ("account", "renews", "days", "ARR", "health", "band", "alert", "owner"):
        right = name in ("days", "ARR", "health")
        table.add_column(
            name, justify="right" if right else "left", no_wrap=name in ("account", "renews")
        )
    for row in calendar.itertuples(index=False):
        renews = "monthly" if row.month_to_month else f"{row.renewal_at:%Y-%m-%d}"
        days = (
            ""
            if pd.isna(row.days_left)
            else f"[red]overdue {-row.days_left:.0f}[/red]"
            if row.overdue
            else f"{row.days_left:.0f}"
        )
        alert = "" if pd.isna(row.alert_days) else f"[red]{row.alert_days}-day[/red]"
        owner = "[yellow]unowned[/yellow]" if row.unowned else str(row.csm_owner)
        table.add_row(
            str(row.account_id),
            renews,
            days,
            f"{row.arr:,.0f}",
            "" if pd.isna(row.health_score) else f"{row.health_score:.0f}",
            "" if pd.isna(row.health_band) else str(row.health_band),
            alert,
            owner,
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("health")(health)
    app.command("renewals")(renewals)
