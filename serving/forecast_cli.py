"""`nrr forecast`: score the book at a forecast date, simulate NRR, write the leadership report."""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console

from features.config import SnapshotConfig
from features.definition import FeatureDefinition
from features.labels import labels_known_at
from features.load_cli import read_parquet_or_exit
from models.clock import utc_now
from models.outcomes.config import TargetsConfig
from models.outcomes.interventions import InterventionReport
from models.outcomes.tables import OutcomeTables
from models.outcomes.targets import target_probabilities
from models.revenue.arr_tilt import ArrTilt, fit_arr_tilt, latest_labelled
from models.revenue.forecast_book import (
    book_at,
    history_at,
    quarter_start,
)
from models.rules.config import RulesConfig, load_rules_config
from models.workspace import WORKDIR_HELP
from serving.dashboard import FORECAST_FILE, INTERACTIVE_FILE, NRR_FILE, REPORT_FILE
from serving.forecasting import build_forecast, build_nrr_tables
from serving.registry_client import ModelBundle
from serving.report_html import BACKTEST_COLUMNS, ReportInputs, render_report
from serving.report_interactive import render_interactive
from serving.routes_outcomes import outcome_files
from serving.settings import ServingSettings
from serving.voice_files import voice_files
from serving.voice_report import voice_sections

console = Console(stderr=True)
out = Console()
_SCORE_COLUMNS = ("churn_probability", "expansion_probability", "health_score", "health_band")


def attach_scores(book: pd.DataFrame, scored: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Book joined with the scores; accounts without a score get the book's mean probability.

    Returns the joined frame and how many accounts were filled (the caller reports it).
    """
    missing = [
        c for c in ("account_id", "churn_probability", "expansion_probability") if c not in scored
    ]
    if missing:
        raise ValueError(f"scored rows lack column(s) {missing}")
    cols = ["account_id", *(c for c in _SCORE_COLUMNS if c in scored.columns)]
    scores = scored.loc[:, cols].assign(account_id=scored["account_id"].astype("string"))
    if scores["account_id"].duplicated().any():
        raise ValueError("scored rows hold more than one row per account: pass one as_of")
    joined = book.merge(scores, on="account_id", how="left")
    filled = 0
    for col in ("churn_probability", "expansion_probability"):
        values = pd.to_numeric(joined[col], errors="raise").astype(float)
        gap = values.isna()
        if gap.all():
            reason = _first_text(scored, "fallback_reason")
            raise ValueError(
                f"no account of the book has a calibrated {col}"
                + (f" ({reason})" if reason else "")
                + ": train and promote models first (`nrr train --data DIR`, `nrr promote`)"
            )
        filled = max(filled, int(gap.sum()))
        joined[col] = values.fillna(float(values.mean()))
    return joined, filled


ACCOUNT_LABELS = ("name", "csm_owner")


def attach_labels(book: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Book with accounts.name and accounts.csm_owner, when the accounts table has them."""
    cols = [c for c in ACCOUNT_LABELS if c in accounts.columns and c not in book.columns]
    if not cols:
        return book
    labels = accounts.loc[:, ["account_id", *cols]].drop_duplicates("account_id")
    labels = labels.assign(account_id=labels["account_id"].astype("string"))
    joined = book.merge(labels, on="account_id", how="left")
    return joined.assign(**{c: joined[c].astype("string") for c in cols})


def _first_text(frame: pd.DataFrame, column: str) -> str | None:
    if column not in frame.columns:
        return None
    values = frame[column].dropna()
    return None if values.empty else str(values.iloc[0])


def write_tables(report: ReportInputs, folder: Path) -> list[Path]:
    """Every table of the report as CSV into `folder`."""
    nrr, fc = report.nrr, report.forecast
    tables: dict[str, pd.DataFrame] = {
        "nrr_monthly": nrr.monthly,
        "nrr_quarterly": nrr.quarterly,
        **{f"nrr_quarterly_by_{k}": v for k, v in nrr.by_split.items()},
        "cohort_heatmap": nrr.cohort_heatmap,
        "best_cohorts": nrr.best_cohorts,
        "worst_cohorts": nrr.worst_cohorts,
        "forecast_summary": fc.summary,
        "forecast_fan": fc.fan,
        "forecast_accounts": fc.accounts,
        "top_accounts_at_risk": fc.top_at_risk,
        "top_accounts_expansion": fc.top_expansion,
        "health_bands": fc.health_bands,
        "contraction_rates": fc.contraction_rates,
    }
    if report.backtest is not None:
        tables["forecast_backtest"] = report.backtest
    if report.outcomes is not None:
        tables["churn_timing"] = report.outcomes.timing
        tables["winback"] = report.outcomes.winback
    if report.targets is not None:
        tables["nrr_targets"] = report.targets
    if report.interventions is not None:
        tables["intervention_outcomes"] = report.interventions.results
    paths = []
    for name, frame in tables.items():
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def write_report(report: ReportInputs, out_dir: Path) -> Path:
    """Write report.html, interactive.html, forecast.json, nrr.json and the CSVs atomically.

    Returns the path of report.html.
    """
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / REPORT_FILE).write_text(render_report(report), encoding="utf-8")
        (tmp / INTERACTIVE_FILE).write_text(render_interactive(report), encoding="utf-8")
        forecast: dict[str, Any] = report.forecast.to_dict()
        forecast["model_source"] = report.model_source
        (tmp / FORECAST_FILE).write_text(json.dumps(forecast, indent=1), encoding="utf-8")
        (tmp / NRR_FILE).write_text(json.dumps(report.nrr.to_dict(), indent=1), encoding="utf-8")
        extra = outcome_files(
            report.outcomes,
            report.targets,
            as_of=report.forecast.as_of,
            interventions=report.interventions,
        )
        extra.update({k: dict(v) for k, v in report.voice.items()})  # serving.voice_files
        for name, content in extra.items():
            (tmp / name).write_text(json.dumps(content, indent=1), encoding="utf-8")
        write_tables(report, tmp)
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / REPORT_FILE


def read_backtest(path: Path) -> pd.DataFrame:
    """A backtest table written by `nrr backtest-forecast` (CSV or Parquet)."""
    if not path.is_file():
        raise typer.BadParameter(f"--backtest: {path} does not exist")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in BACKTEST_COLUMNS if c not in frame.columns]
    if missing:
        raise typer.BadParameter(f"--backtest: {path} lacks column(s) {missing}")
    return frame.assign(covered=frame["covered"].astype(bool))


def prepare_report(
    *,
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    scored: pd.DataFrame,
    as_of: pd.Timestamp,
    data_end: pd.Timestamp,
    draws: int,
    seed: int,
    backtest: pd.DataFrame | None,
    model_source: str = "",
    origin: str = "",
    grace_days: int = SnapshotConfig().grace_days,
    rules: RulesConfig | None = None,
    outcomes: OutcomeTables | None = None,
    targets: TargetsConfig | None = None,
    interventions: InterventionReport | None = None,
    tilt: ArrTilt | None = None,
) -> tuple[ReportInputs, int]:
    """All report tables from the raw tables and per-account scores at as_of.

    Returns the report and how many book accounts had no score (filled with the mean).
    """
    book, filled = attach_scores(
        book_at(subscriptions, accounts, as_of=as_of, grace_days=grace_days), scored
    )
    if tilt is not None:  # the forecast sums probability x ARR: see models.revenue.arr_tilt
        book["churn_probability"] = tilt.apply(book["churn_probability"], book["arr"])
    book = attach_labels(book, accounts)  # name and CSM owner beside each account id
    past = history_at(subscriptions, accounts, as_of=as_of, grace_days=grace_days)
    forecast = build_forecast(
        book,
        amount_model=past.amounts,
        rates=past.rates,
        as_of=as_of,
        draws=draws,
        seed=seed,
        workers=2,
        shock=past.shock,
        renewal=past.renewal,
    )
    target_table = None
    if targets is not None:  # the same Monte Carlo inputs as the fan, read at every target
        target_table = target_probabilities(
            forecast.accounts,
            targets=targets,
            renewal=past.renewal,
            shock=past.shock,
            draws=draws,
            seed=seed + 1,
            workers=2,
        )
    revenue = (rules or load_rules_config()).revenue
    nrr = build_nrr_tables(
        subscriptions,
        accounts,
        data_end=data_end,
        grace_days=grace_days,
        min_cohort_accounts=revenue.min_cohort_accounts,
    )
    report = ReportInputs(
        nrr=nrr,
        forecast=forecast,
        backtest=backtest,
        model_source=model_source,
        origin=origin,
        bands=revenue.bands(),
        benchmarks=revenue.benchmarks(),
        outcomes=outcomes,
        targets=target_table,
        interventions=interventions,
    )
    return report, filled


def _forecast_date(quarter: str | None, data_end: pd.Timestamp) -> pd.Timestamp:
    if quarter is None:
        return pd.Timestamp(year=data_end.year, month=data_end.month, day=1)
    try:
        as_of = quarter_start(quarter)
    except ValueError as exc:
        raise typer.BadParameter(f"--quarter: {exc}") from exc
    if as_of > data_end:
        raise typer.BadParameter(
            f"--quarter {quarter} starts after the data ends ({data_end:%Y-%m-%d})"
        )
    return as_of


def _snapshot_rows(
    source: Any, snapshots: Path | None, as_of: pd.Timestamp, definition: FeatureDefinition
) -> pd.DataFrame:
    if snapshots is not None:
        frame = read_parquet_or_exit(snapshots, "--snapshots")
        rows = frame[frame["as_of"] == as_of]
        if rows.empty:
            found = ", ".join(f"{t:%Y-%m-%d}" for t in sorted(frame["as_of"].unique())[-3:])
            raise typer.BadParameter(
                f"--snapshots has no rows at {as_of:%Y-%m-%d} (latest: {found})"
            )
        return rows.reset_index(drop=True)
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    spine = build_spine(source, start=as_of, end=as_of)
    return build_snapshots(source=source, spine=spine, config=definition.snapshot)


def _all_snapshots(snapshots: Path | None) -> pd.DataFrame | None:
    """Every row of --snapshots (the roadmap's metric audit reads the labelled ones)."""
    return None if snapshots is None else read_parquet_or_exit(snapshots, "--snapshots")


def _labelled_rows(
    source: Any, snapshots: Path | None, as_of: pd.Timestamp, definition: FeatureDefinition
) -> pd.DataFrame:
    """Snapshot rows of the latest dates whose churn label had closed by as_of."""
    horizon = pd.Timedelta(days=definition.snapshot.horizon_days)
    if snapshots is not None:
        frame = read_parquet_or_exit(snapshots, "--snapshots")
    else:
        from features.snapshots import build_snapshots
        from features.spine import build_spine

        # a year back covers the latest labelled dates of any snapshot frequency
        start = as_of - horizon - pd.DateOffset(months=12)
        spine = build_spine(source, start=start, end=as_of - horizon, freq=definition.snapshot.freq)
        frame = build_snapshots(source=source, spine=spine, config=definition.snapshot)
    rows = labels_known_at(frame, at=as_of, horizon_days=definition.snapshot.horizon_days)
    return rows[latest_labelled(rows["as_of"].to_numpy())].reset_index(drop=True)


def _churn_tilt(rows: pd.DataFrame, *, settings: ServingSettings, bundle: ModelBundle) -> ArrTilt:
    """The served churn probabilities checked by ARR on labelled rows (identity without)."""
    if rows.empty:
        return ArrTilt()
    scored, _ = _score(rows, settings=settings, bundle=bundle)
    p = pd.to_numeric(scored["churn_probability"], errors="coerce").to_numpy(dtype=float)
    return fit_arr_tilt(p, rows["churned"].astype(float), rows["arr"])


def _served_models(workdir: Path | None) -> tuple[ServingSettings, ModelBundle]:
    """The champions of the workspace; no store at all is an error, not a rules report."""
    from serving.registry_client import load_bundle
    from serving.settings import get_settings

    settings = get_settings()
    if workdir is not None:
        settings = settings.model_copy(update={"workdir": workdir})
    if (missing := settings.missing_store()) is not None:
        console.print(f"[red]error:[/red] {missing}.")
        raise typer.Exit(1)
    return settings, load_bundle(settings)


def _score(
    rows: pd.DataFrame, *, settings: ServingSettings, bundle: ModelBundle
) -> tuple[pd.DataFrame, str]:
    from models.rules.config import load_rules_config
    from serving.scoring import score_snapshots

    rules = load_rules_config(settings.rules_path)
    scored = score_snapshots(rows, bundle=bundle, rules=rules, drivers_k=0)
    versions = ", ".join(f"{k} v{v}" for k, v in bundle.versions.items() if v is not None)
    if bundle.fallback_reason:
        source = f"Probabilities: calibrated rule-based fallback ({bundle.fallback_reason})."
    else:
        source = f"Probabilities: registered models @{settings.model_alias} ({versions})."
    return scored, source


def forecast(
    data: Path = typer.Option(..., "--data", help="folder (or DuckDB file) of the contract tables"),
    out_dir: Path = typer.Option(..., "--out", help="folder to write the report into"),
    quarter: str | None = typer.Option(
        None, help="forecast from this quarter's start, e.g. 2026Q1"
    ),
    snapshots: Path | None = typer.Option(None, help="Parquet from `nrr snapshots` to score"),
    backtest: Path | None = typer.Option(None, help="table from `nrr backtest-forecast`"),
    draws: int = typer.Option(10_000, min=1000, help="Monte Carlo draws"),
    seed: int = typer.Option(0, help="Monte Carlo seed"),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    targets: Path | None = typer.Option(
        None, "--targets", help="NRR targets YAML (default experiments/targets.yaml)"
    ),
    outcomes: Path | None = typer.Option(
        None, "--outcomes", help="outcomes YAML (default experiments/outcomes.yaml)"
    ),
) -> None:
    """Write the NRR forecast report (HTML + JSON + CSV) served at /dashboard."""
    from features.load_cli import load_or_exit
    from models.outcomes.config import (
        OutcomesConfigError,
        load_outcomes_config,
        load_targets,
    )
    from models.outcomes.tables import build_outcome_tables
    from serving.intervention_outcomes import intervention_report, recorded_plays

    try:
        target_config = load_targets(targets)
    except OutcomesConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--targets") from None
    try:
        outcome_config = load_outcomes_config(outcomes)
    except OutcomesConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--outcomes") from None

    # The data's problems first (a validation report names them all), then the models'.
    source = load_or_exit(data, now=utc_now())
    settings, bundle = _served_models(workdir)
    definition = bundle.feature_definition()
    source = definition.apply(source)
    as_of = _forecast_date(quarter, source.data_end)
    rows = _snapshot_rows(source, snapshots, as_of, definition)
    scored, model_source = _score(rows, settings=settings, bundle=bundle)
    tilt = _churn_tilt(
        _labelled_rows(source, snapshots, as_of, definition), settings=settings, bundle=bundle
    )
    said = tilt.describe()
    console.print(said)
    model_source = f"{model_source} {said[0].upper()}{said[1:]}."
    console.print("churn timing, win-back backtest and NRR targets ...")
    outcome_tables = build_outcome_tables(
        source, config=outcome_config, grace_days=definition.snapshot.grace_days, seed=seed
    )
    plays = recorded_plays(source, workdir)
    intervention = None
    if not plays.empty:  # the export or the API recorded plays: report whether they worked
        console.print(f"interventions: {len(plays):,} plays, scoring their months ...")
        spec = outcome_config.interventions
        intervention, _ = intervention_report(
            source,
            plays,
            spec=spec,
            score=lambda rows: _score(rows, settings=settings, bundle=bundle),
            definition=definition,
        )
    report, filled = prepare_report(
        subscriptions=source.sql("SELECT * FROM subscriptions"),
        accounts=source.sql("SELECT * FROM accounts"),
        scored=scored,
        as_of=as_of,
        data_end=source.data_end,
        draws=draws,
        seed=seed,
        backtest=read_backtest(backtest) if backtest is not None else None,
        model_source=model_source,
        origin=f"Data: {source.origin}.",
        grace_days=definition.snapshot.grace_days,
        outcomes=outcome_tables,
        targets=target_config,
        interventions=intervention,
        tilt=tilt,
    )
    if filled:
        console.print(f"[yellow]{filled} account(s) with ARR had no snapshot score: mean used")
    voice = voice_files(source, snapshots=_all_snapshots(snapshots), bundle=bundle)
    report = dataclasses.replace(report, voice=voice, voice_sections=tuple(voice_sections(voice)))
    path = write_report(report, out_dir)
    fc = report.forecast
    console.print(
        f"{fc.quarter}: NRR P50 {fc.value('nrr'):.1%} "
        f"(P10 {fc.value('nrr', 'p10'):.1%}, P90 {fc.value('nrr', 'p90'):.1%})"
    )
    _log_run(path, report, settings=settings, origin=source.origin)
    out.print(str(path))


def _log_run(path: Path, report: ReportInputs, *, settings: ServingSettings, origin: str) -> None:
    """Render the report's images and log the forecast run; say what could not be done.

    The report is written by now: a browser or store failing here is a warning, not a lost
    report.
    """
    from serving.forecast_run import EXPERIMENT, forecast_figures, log_forecast_run, render_images

    console.print("rendering report.pdf and report_top.png ...")
    _, why_not = render_images(path, path.parent)
    if why_not:
        console.print(f"[yellow]{why_not}")
    fc = report.forecast
    tags = {"quarter": fc.quarter, "as_of": fc.as_of.date().isoformat(), "data": origin}
    try:
        run_id = log_forecast_run(
            path.parent,
            workspace=settings.workspace(),
            figures=forecast_figures(fc, report.backtest),
            tags=tags,
        )
    except Exception as exc:  # noqa: BLE001 - any store failure: the report itself is written
        console.print(f"[yellow]forecast run not logged to MLflow: {exc}")
    else:
        console.print(f"logged as run {run_id} of MLflow experiment {EXPERIMENT!r}")


def register(app: typer.Typer) -> None:
    """Add `nrr forecast` to the root command."""
    app.command("forecast")(forecast)
