"""Subcommands of the features stage: simulate, validate, snapshots."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from experiments import DEFAULT_EXPERIMENT
from features.definition import FeatureDefinition, write_snapshots
from features.engine.catalog import CatalogTables
from features.log_progress import LogProgress

console = Console(stderr=True)
out = Console()


def _now(ctx: typer.Context) -> pd.Timestamp:
    """The root command's clock (features/ never reads one): the default extraction time."""
    clock = ctx.find_root().obj
    if not callable(clock):
        raise RuntimeError("features commands need a clock in the root context (nrr.cli)")
    now: pd.Timestamp = clock()
    return now


def _progress() -> Progress | LogProgress:
    """A bar in a terminal; in a log, a timestamped line now and then."""
    if not console.is_terminal:
        return LogProgress(console)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def parse_time_option(value: str | None, name: str) -> pd.Timestamp | None:
    """An ISO-8601 option value as naive UTC (None stays None); a clear error names the option."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name}: {value!r} is not an ISO-8601 date or time") from exc
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def check_out_path(path: Path, *, option: str = "--out", folder: bool = False) -> None:
    """Refuse, before any work is done, an output path that cannot be written.

    Nothing is created here: a command that fails later must not leave empty folders behind.
    """
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        raise typer.BadParameter(
            f"{option} {path} is {kind}; expected {'a folder' if folder else 'a file name'}"
        )
    for parent in path.absolute().parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise typer.BadParameter(f"{option} {path}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise typer.BadParameter(f"{option} {path}: {parent} is not writable")
        return


def write_failed(path: Path, exc: OSError) -> typer.Exit:
    """One error line for an output that could not be written (disk full, permissions, ...)."""
    console.print(f"[red]error:[/red] cannot write {path}: {exc.strerror or exc}")
    return typer.Exit(1)


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
        accounts=accounts, months=months, seed=seed, end=parse_time_option(end, "--end")
    )
    check_out_path(out_dir, folder=True)
    try:
        with _progress() as progress:
            task = progress.add_task("simulating accounts", total=accounts)
            summary = write_company(
                out_dir, config, progress=lambda done: progress.update(task, completed=done)
            )
    except OSError as exc:
        raise write_failed(out_dir, exc) from None
    out.print(summary.render())
    out.print(f"wrote {out_dir.resolve()}")


ENGINE_HELP = (
    "duckdb (embedded, default) or spark (pip install 'nrr-engine[spark]'; --data is then a "
    "folder of Parquet/Delta tables, read by the active or a local Spark session)"
)


CATALOG_HELP = (
    "spark only, instead of --data: the schema holding the tables (accounts, events, ...) "
    "in the Spark session's catalog, as <catalog>.<schema> or <schema>"
)
EVENT_MAP_HELP = "with --catalog: the event map YAML (a --data folder has its event_map.yaml)"


def source_option(
    data: Path | None, catalog: str | None, event_map: Path | None, engine: str
) -> Path | CatalogTables:
    """Where the tables are: the --data folder or the --catalog schema (exactly one)."""
    from features.engine.catalog import CatalogNameError, parse_catalog

    if data is not None and catalog is not None:
        raise typer.BadParameter("give --data or --catalog, not both")
    if data is None and catalog is None:
        raise typer.BadParameter("give --data (a folder of tables) or --catalog (a schema)")
    if catalog is None:
        if event_map is not None:
            raise typer.BadParameter("--event-map goes with --catalog (a folder has its own)")
        assert data is not None
        return data
    if engine != "spark":
        raise typer.BadParameter("--catalog reads tables with --engine spark")
    try:
        return parse_catalog(catalog, event_map=event_map)
    except CatalogNameError as exc:
        raise typer.BadParameter(str(exc), param_hint="--catalog") from None


def check_engine_option(engine: str) -> str:
    """The --engine value, or a one-line usage error naming the known engines."""
    from features.engine import EngineError, check_engine

    try:
        return check_engine(engine)
    except EngineError as exc:
        raise typer.BadParameter(str(exc), param_hint="--engine") from None


def engine_failed(exc: Exception) -> typer.Exit:
    """One error line when the chosen engine cannot run here (no pyspark, no Java)."""
    from rich.markup import escape

    # escaped: "nrr-engine[spark]" is not rich markup
    console.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(1)


def validate(
    ctx: typer.Context,
    data: Path | None = typer.Option(None, "--data", help="folder of tables or a DuckDB file"),
    extracted_at: str | None = typer.Option(
        None, help="when the data was exported (default: manifest.yaml, else now)"
    ),
    engine: str = typer.Option("duckdb", "--engine", help=ENGINE_HELP),
    catalog: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
    event_map: Path | None = typer.Option(
        None, "--event-map", exists=True, dir_okay=False, help=EVENT_MAP_HELP
    ),
) -> None:
    """Check the tables against the data contract; exit 1 on errors."""
    from features.engine import EngineError
    from features.load import inspect_source

    check_engine_option(engine)
    where = source_option(data, catalog, event_map, engine)
    try:
        report, _ = inspect_source(
            where,
            extracted_at=parse_time_option(extracted_at, "--extracted-at"),
            now=_now(ctx),
            engine=engine,
        )
    except EngineError as exc:
        raise engine_failed(exc) from None
    out.print(report.render())
    raise typer.Exit(code=0 if report.ok else 1)


def snapshots(
    ctx: typer.Context,
    data: Path | None = typer.Option(None, "--data", help="folder of tables or a DuckDB file"),
    out_file: Path = typer.Option(..., "--out", help="Parquet file to write"),
    experiment: Path = typer.Option(
        DEFAULT_EXPERIMENT, "--experiment", help="experiment YAML whose `snapshot` settings apply"
    ),
    freq: str | None = typer.Option(
        None, help="snapshot grid: month (month starts) or week (Mondays); default: experiment"
    ),
    start: str | None = typer.Option(None, help="first as_of date (default: first subscription)"),
    end: str | None = typer.Option(None, help="last as_of date (default: end of the data)"),
    horizon: int | None = typer.Option(
        None, min=1, help="label window in days (default: experiment)"
    ),
    extracted_at: str | None = typer.Option(
        None, help="when the data was exported (default: manifest.yaml, else now)"
    ),
    engine: str = typer.Option("duckdb", "--engine", help=ENGINE_HELP),
    catalog: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
    event_map: Path | None = typer.Option(
        None, "--event-map", exists=True, dir_okay=False, help=EVENT_MAP_HELP
    ),
    out_table: str | None = typer.Option(
        None,
        "--out-table",
        help="spark only: also save the snapshots as this table ([catalog.]schema.table, "
        "replaced if it exists), its feature definition as a table property",
    ),
) -> None:
    """Build point-in-time account snapshots with labels and write them as Parquet."""
    from features.config import SnapshotSettingsError, snapshot_settings
    from features.definition import FeatureDefinition
    from features.engine import EngineError
    from features.load_cli import load_or_exit
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    if freq not in (None, "month", "week"):
        raise typer.BadParameter(f"--freq must be 'month' or 'week', got {freq!r}")
    try:
        config = snapshot_settings(experiment)
    except SnapshotSettingsError as exc:
        raise typer.BadParameter(str(exc)) from None
    overrides = {"freq": freq, "horizon_days": horizon}
    config = config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    check_out_path(out_file)
    check_engine_option(engine)
    where = source_option(data, catalog, event_map, engine)
    if out_table is not None:
        check_out_table(out_table, engine)
    try:
        source = load_or_exit(
            where,
            extracted_at=parse_time_option(extracted_at, "--extracted-at"),
            now=_now(ctx),
            engine=engine,
        )
        spine = build_spine(
            source,
            start=parse_time_option(start, "--start"),
            end=parse_time_option(end, "--end"),
            freq=config.freq,
        )
        with _progress() as progress:
            task = progress.add_task("building snapshots (partitions)", total=None)
            frame = build_snapshots(
                source=source,
                spine=spine,
                config=config,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except EngineError as exc:
        raise engine_failed(exc) from None
    definition = FeatureDefinition.of_source(source, config)
    try:
        write_parquet_atomic(frame, out_file, definition)
    except OSError as exc:
        raise write_failed(out_file, exc) from None
    if out_table is not None:
        from features.engine.spark_write import save_snapshot_table

        try:
            save_snapshot_table(source.engine.spark, frame, out_table, definition)  # type: ignore[attr-defined]
        except source.engine.errors as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            console.print(f"[red]error:[/red] cannot save --out-table {out_table}: {first}")
            raise typer.Exit(1) from None
    out.print(summarise_snapshots(frame))
    out.print(f"wrote {out_file.resolve()}" + (f" and table {out_table}" if out_table else ""))


def check_out_table(name: str, engine: str) -> None:
    """A usage error unless --out-table names a table and the engine is Spark."""
    if engine != "spark":
        raise typer.BadParameter("--out-table saves a table with --engine spark")
    from features.engine.catalog import CatalogNameError, check_table_name

    try:
        check_table_name(name)
    except CatalogNameError as exc:
        raise typer.BadParameter(str(exc), param_hint="--out-table") from None


def write_parquet_atomic(
    frame: pd.DataFrame, path: Path, definition: FeatureDefinition | None = None
) -> None:
    """Write Parquet to a temp file beside `path`, then rename: never a partial file.

    With a definition, the snapshot settings and event roles go into the file's metadata,
    so `nrr train --snapshots` registers models that know how their features were built.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if definition is None:
            frame.to_parquet(tmp, index=False)
        else:
            write_snapshots(frame, Path(tmp), definition)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summarise_snapshots(frame: pd.DataFrame) -> str:
    """Rows, accounts, as_of range and label rates of a snapshot frame, as text."""
    if frame.empty:
        return "0 snapshot rows (no account had ARR > 0 on the grid)"
    labelled = frame[frame["labelled"]]
    lines = [
        f"{len(frame):,} snapshot rows, {frame['account_id'].nunique():,} accounts, "
        f"as_of {frame['as_of'].min():%Y-%m-%d} .. {frame['as_of'].max():%Y-%m-%d}",
        f"{len(labelled):,} labelled rows ({len(frame) - len(labelled):,} unlabelled tail)",
    ]
    if not labelled.empty:
        rates = {
            name: float(labelled[name].astype("float64").mean())
            for name in ("churned", "expanded", "contracted")
        }
        lines.append("label rates: " + ", ".join(f"{k} {v:.1%}" for k, v in rates.items()))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("validate")(validate)
    app.command("snapshots")(snapshots)
