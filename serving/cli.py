"""Subcommands of the serving stage: serve, score, apikey create | list | revoke."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console

from features.cli import (
    CATALOG_HELP,
    ENGINE_HELP,
    EVENT_MAP_HELP,
    check_engine_option,
    check_out_path,
    parse_time_option,
    source_option,
    write_failed,
)
from features.engine.catalog import CatalogTables
from models.clock import utc_now
from models.workspace import WORKDIR_HELP
from serving.settings import MAX_WORKERS, ServingSettings, get_settings

console = Console(stderr=True)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
_KEYS_FILE_HELP = "keys file (default NRR_API_KEYS_PATH, else api_keys.json in the workspace)"


def serve(
    host: str | None = typer.Option(None, help="interface to bind (default NRR_HOST)"),
    port: int | None = typer.Option(None, help="port (default NRR_PORT); 0 = any free port"),
    log_level: str = typer.Option(
        "info", help="uvicorn log level: critical, error, warning, info, debug or trace"
    ),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="worker processes (default NRR_WORKERS, else 1): one core each for Python work; "
        "they share the port, the metrics and every reload (docs/RUNBOOK.md, 'Replicas')",
    ),
) -> None:
    """Run the prediction API with uvicorn."""
    # One OpenMP thread per prediction: a server gains from concurrent requests, and
    # waking LightGBM's thread pool for a one-row input costs more than the prediction
    # itself, the more so on a busy host (benchmarks/bench_api.py measures the latency).
    # Must be set before LightGBM loads, so only the default; export it to override.
    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise typer.BadParameter(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from serving.replicas import prepare_run_dir, remove_run_dir

    updates = {
        k: v
        for k, v in {"host": host, "port": port, "workdir": workdir, "workers": workers}.items()
        if v is not None
    }
    settings = get_settings().model_copy(update=updates)
    n = settings.workers
    console.print(
        f"serving on http://{settings.host}:{settings.port} with {n} worker(s)  (docs at /docs)"
    )
    # uvicorn's own supervisor, not gunicorn: uvicorn is already a dependency, restarts a
    # worker that dies, and stops them all on SIGTERM. The workers share the listening
    # socket, and a run folder (settings, reload generation, multiprocess metrics) created
    # fresh here and removed at exit (serving.replicas). Before any worker imports
    # prometheus_client: it picks its multiprocess mode from the environment at import.
    run_dir = prepare_run_dir(settings, n)
    # uvicorn raises SIGTERM again once it has shut down; Python's default handler would
    # then end the process before the run folder below is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # loop/http "auto" pick uvloop and httptools (dependencies): a C event loop and HTTP
    # parser cost less per request than asyncio + h11, and with precomputed scores that
    # framework cost is most of a request (benchmarks/bench_api.py measures the ceiling).
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,
        "loop": "auto",
        "http": "auto",
        # SIGTERM: requests in flight get this long, then the server exits; a model load
        # stuck on the registry is a daemon thread and holds nothing up (issue 13).
        "timeout_graceful_shutdown": max(1, round(settings.shutdown_grace_seconds)),
    }
    try:
        if n == 1:
            # One process: the app is built here, no supervisor in between.
            from serving.app import create_app

            uvicorn.run(create_app(settings), workers=1, **options)
        else:
            # Each worker builds its app from the run folder's settings.
            uvicorn.run("serving.app:app_from_run_dir", factory=True, workers=n, **options)
    finally:
        remove_run_dir(run_dir)


def _with_workdir(settings: ServingSettings, workdir: Path | None) -> ServingSettings:
    return settings if workdir is None else settings.model_copy(update={"workdir": workdir})


def _parse_as_of(value: str) -> pd.Timestamp:
    ts = parse_time_option(value, "--as-of")
    assert ts is not None
    if ts != ts.normalize():
        raise typer.BadParameter(f"--as-of must be a date (00:00 UTC), got {value!r}")
    return ts


def score(
    data: Path | None = typer.Option(
        None, "--data", exists=True, help="folder (or DuckDB file) of raw tables"
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="score accounts active at this date (UTC); default: the data's last day",
    ),
    out: Path = typer.Option(..., "--out", help="output file: .csv or .parquet"),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    rules_only: bool = typer.Option(
        False, "--rules-only", help="score with the rule-based health score alone (no models)"
    ),
    engine: str = typer.Option(
        "duckdb",
        "--engine",
        help=f"{ENGINE_HELP}; spark also scores with the champions' registered pyfunc as a "
        "Spark UDF (docs/SPARK.md)",
    ),
    catalog: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
    event_map: Path | None = typer.Option(
        None, "--event-map", exists=True, dir_okay=False, help=EVENT_MAP_HELP
    ),
    extracted_at: str | None = typer.Option(
        None,
        "--extracted-at",
        help="when the data was exported (default: manifest.yaml, else the last observed "
        "time; a --catalog has no manifest)",
    ),
) -> None:
    """Score every account active at --as-of from the raw tables (models or rules fallback)."""
    if out.suffix.lower() not in {".csv", ".parquet"}:
        raise typer.BadParameter(f"--out must end in .csv or .parquet, got {out.name!r}")
    check_engine_option(engine)
    where = source_option(data, catalog, event_map, engine)
    check_out_path(out)
    when = None if as_of is None else _parse_as_of(as_of)
    from features.engine import EngineError
    from features.validate import InvalidDataError

    settings = _with_workdir(get_settings(), workdir)
    if rules_only:
        settings = settings.model_copy(update={"use_registry": False})
    elif (missing := settings.missing_store()) is not None:
        console.print(f"[red]error:[/red] {missing}; or score with --rules-only.")
        raise typer.Exit(1)
    try:
        table, bundle = batch_score(
            where,
            as_of=when,
            settings=settings,
            engine=engine,
            extracted_at=parse_time_option(extracted_at, "--extracted-at"),
        )
    except InvalidDataError as exc:
        console.print(exc.report.render())
        raise typer.Exit(1) from exc
    except (ValueError, EngineError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False)
    else:
        table.to_parquet(out, index=False)
    # "mixed" rows have one probability from the rules: they count as a fallback too.
    n_rules = int((table["source"] != "model").sum()) if len(table) else 0
    scored_at = table["as_of"].iloc[0].date() if len(table) else when
    console.print(f"scored {len(table)} accounts at {scored_at} -> {out}")
    if bundle.fallback_reason:
        console.print(
            f"[yellow]{n_rules} scored (in part) by the rules:[/yellow] {bundle.fallback_reason}"
        )


def batch_score(
    data: Path | CatalogTables,
    *,
    as_of: pd.Timestamp | None,
    settings: ServingSettings,
    engine: str = "duckdb",
    extracted_at: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, Any]:
    """The flat score table of every account active at as_of (default: the data's last day).

    engine "spark": the raw tables are read and the snapshot rows built by Spark
    (features.engine), and the probabilities and rule scores come from the champions'
    registered pyfunc applied as a Spark UDF (serving.score_spark); the table is the same.
    """
    from features.load import load_source
    from models.rules.config import load_rules_config
    from serving.registry_client import load_bundle
    from serving.scoring import score_snapshots
    from serving.state import StateError, align_bundle, check_bundle

    now = utc_now()
    source = load_source(data, extracted_at=extracted_at, now=now, engine=engine)
    if as_of is None:
        # The extract day at 00:00: features look strictly before it, so nothing is cut off.
        as_of = pd.Timestamp(source.data_end).normalize()
    if as_of > source.data_end:
        raise ValueError(f"--as-of {as_of.date()} is after the data's end {source.data_end}")
    loaded = load_bundle(settings)
    # Features as the served models were trained on them (settings and event roles).
    definition = loaded.feature_definition()
    source = definition.apply(source)
    rows, previous, earlier = _rows_with_history(source, as_of, definition.snapshot)
    rules = load_rules_config(settings.rules_path)
    bundle = align_bundle(loaded, rows)
    try:
        check_bundle(bundle, rows)
    except StateError as exc:
        from dataclasses import replace

        bundle = replace(
            bundle,
            churn=None,
            expansion=None,
            fallback_reason=str(exc),
            versions={"churn": None, "expansion": None},
        )

    def score_rows(frame: pd.DataFrame) -> pd.DataFrame:
        return score_snapshots(
            frame,
            bundle=bundle,
            rules=rules,
            drivers_k=settings.drivers_k,
            previous=previous,
            earlier=earlier,
        )

    if engine == "spark":
        from serving.score_spark import score_on_spark

        table = score_on_spark(
            rows, bundle=bundle, settings=settings, score_rows=score_rows, say=console.print
        )
        return table, bundle
    return score_rows(rows), bundle


def _rows_with_history(
    source: Any, as_of: pd.Timestamp, config: Any
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Features of the accounts active at as_of, at the previous snapshot date and 90 days
    before, in one build (one scan of the events).

    The previous date is as_of minus one snapshot period of the model's definition
    (`freq`): its health scores give health_change, which the At-risk play needs. The
    90-day rows give the drivers' "90 days ago". Each earlier date keeps only the accounts
    active then (a newer account has no earlier value). All are point-in-time: features
    at an earlier date read only rows before that date.
    """
    from features.snapshots import build_features
    from models.scoring.comparison import COMPARISON_DAYS

    spine = active_spine(source, as_of)
    step = pd.DateOffset(weeks=1) if config.freq == "week" else pd.DateOffset(months=1)
    dates = {"previous": as_of - step, "earlier": as_of - pd.Timedelta(days=COMPARISON_DAYS)}
    ids = set(spine["account_id"])
    spines = [spine]
    for day in dates.values():
        then = active_spine(source, day)
        spines.append(then[then["account_id"].isin(ids)])
    full = pd.concat(spines, ignore_index=True).drop_duplicates(["account_id", "as_of"])
    built = build_features(source=source, spine=full, config=config)
    when = pd.to_datetime(built["as_of"])
    rows = built[when == as_of].reset_index(drop=True)
    previous = built[when == dates["previous"]].reset_index(drop=True)
    earlier = built[when == dates["earlier"]].reset_index(drop=True)
    return rows, previous, earlier


def active_spine(source: Any, as_of: pd.Timestamp) -> pd.DataFrame:
    """account_id, as_of of every account active at as_of (`features.active`)."""
    from features.active import active_accounts_in
    from features.spine import normalise_spine

    ids = active_accounts_in(source, as_of=as_of)
    return normalise_spine(pd.DataFrame({"account_id": ids, "as_of": [as_of] * len(ids)}))


@apikey_app.command("create")
def apikey_create(
    role: str = typer.Option(..., "--role", help="reader or admin"),
    note: str = typer.Option("", help="who or what the key is for"),
    keys_file: Path | None = typer.Option(None, help=_KEYS_FILE_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """Create an API key, store only its SHA-256 digest, and print the key once."""
    from serving.security import ROLES, append_key, legacy_count, new_key, read_keys

    if role not in ROLES:
        raise typer.BadParameter(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    clear, record = new_key(role, note=note)  # type: ignore[arg-type]
    path = _keys_path(keys_file, workdir)
    check_out_path(path, option="--keys-file")
    try:
        append_key(path, record)
    except OSError as exc:
        raise write_failed(path, exc) from None
    # No key id on stderr (it lands in terminal and CI logs); the key itself, on stdout, holds it.
    console.print(f"{role} key stored (SHA-256) in {path}; it is shown only once:")
    typer.echo(clear)
    console.print(
        "A running server picks it up within seconds (or at POST /v1/admin/reload); no restart."
    )
    legacy = legacy_count(read_keys(path))
    if legacy:
        console.print(
            f"note: {legacy} older key(s) in {path} are scrypt records. They still work, but "
            "a flood of wrong secrets can hold one off until it is used once after each "
            "start: replace them (docs/RUNBOOK.md, 'Rotating an API key')."
        )


def _keys_path(keys_file: Path | None, workdir: Path | None) -> Path:
    return keys_file or _with_workdir(get_settings(), workdir).keys_path()


def _read_records(path: Path) -> list[Any]:
    from serving.security import KeyFileError, read_keys

    try:
        return read_keys(path)
    except KeyFileError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


@apikey_app.command("list")
def apikey_list(
    keys_file: Path | None = typer.Option(None, help=_KEYS_FILE_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """List the stored keys: id, role, note, creation time, scheme (never a secret or hash)."""
    path = _keys_path(keys_file, workdir)
    records = _read_records(path)
    if not records:
        console.print(f"no API keys in {path}" + ("" if path.exists() else " (no such file)"))
        return
    console.print(f"{len(records)} key(s) in {path}:")
    typer.echo(f"{'key_id':<10} {'role':<7} {'created_at':<26} {'scheme':<7} note")
    for r in records:
        typer.echo(f"{r.key_id:<10} {r.role:<7} {r.created_at:<26} {r.scheme:<7} {r.note}")


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: str = typer.Argument(..., help="the key id: the 8 hex characters after nrr_"),
    keys_file: Path | None = typer.Option(None, help=_KEYS_FILE_HELP),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """Remove a key; a running server refuses it within seconds (or at POST /v1/admin/reload)."""
    from serving.security import remove_key

    path = _keys_path(keys_file, workdir)
    records = _read_records(path)
    if key_id not in {r.key_id for r in records}:
        known = ", ".join(r.key_id for r in records) or "none"
        console.print(
            f"[red]error:[/red] no key with id {key_id!r} in {path} (ids there: {known}; "
            "`nrr apikey list` shows them with their notes)"
        )
        raise typer.Exit(1)
    try:
        removed = remove_key(path, key_id)
    except KeyError:  # revoked by someone else meanwhile
        console.print(f"[red]error:[/red] no key with id {key_id!r} in {path}")
        raise typer.Exit(1) from None
    except OSError as exc:
        raise write_failed(path, exc) from None
    console.print(
        f"revoked {removed.role} key {removed.key_id} ({removed.note or 'no note'}) from {path}; "
        "a running server refuses it within seconds."
    )


def register(app: typer.Typer) -> None:
    """Add the serving stage's commands (and `nrr forecast` from forecast_cli) to the root."""
    from serving import forecast_cli

    app.command("serve")(serve)
    app.command("score")(score)
    app.add_typer(apikey_app, name="apikey")
    forecast_cli.register(app)
