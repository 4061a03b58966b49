"""Loading a data source: open, validate against the contract, expose typed views.

The typed views (see features/source.py) are created only for data that passed
validation: contract names and types, absent optional columns as typed NULL, rows of
unknown accounts dropped, `events.quantity` defaulting to 1, and `tickets.sentiment`
scored from the ticket text when the source has no sentiment column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from features.contract import TABLES
from features.engine import Engine, check_engine, spark_session
from features.engine.base import Kind
from features.engine.catalog import CatalogTables
from features.event_map import (
    DEMO_EVENT_MAP,
    EVENT_MAP_FILE,
    EventMap,
    EventMapError,
    load_event_map,
    parse_event_map,
)
from features.readers import SQL_TYPES, RawSource, SourceError, open_frames, open_path, q
from features.sentiment import score_texts
from features.source import DataSource
from features.validate import InvalidDataError, Issue, ValidationReport, validate_tables

MANIFEST_FILE = "manifest.yaml"


def inspect_source(
    path: Path | CatalogTables,
    *,
    extracted_at: pd.Timestamp | None,
    now: pd.Timestamp,
    engine: str = "duckdb",
) -> tuple[ValidationReport, DataSource | None]:
    """Validate a folder or DuckDB file; the report, and the source when it has no errors.

    engine "spark" reads a folder of Parquet/Delta tables (or the tables a CatalogTables
    names) into the shared Spark session and runs the validation and every later query as
    Spark SQL (EngineError when Spark cannot be used here).
    """
    try:
        if check_engine(engine) == "spark":
            raw = _open_spark(path)
        elif isinstance(path, CatalogTables):
            raise SourceError(f"{path}: tables in a catalog are read by the spark engine only")
        else:
            raw = open_path(Path(path))
    except SourceError as exc:
        return ValidationReport((Issue("error", None, None, str(exc)),), origin=str(path)), None
    issues: list[Issue] = []
    if isinstance(path, CatalogTables):  # a catalog holds tables: no event_map.yaml, manifest
        event_map, from_file = _file_event_map(path.event_map, issues)
        declared = extracted_at
    else:
        assert raw.folder is not None
        event_map, from_file = _folder_event_map(raw.folder, issues)
        declared = extracted_at if extracted_at is not None else _manifest_end(raw.folder, issues)
    return _check_and_build(
        raw,
        event_map=event_map,
        declared=declared,
        now=now,
        issues=issues,
        fit_default_map=not from_file,
    )


def load_source(
    path: Path | CatalogTables,
    *,
    extracted_at: pd.Timestamp | None = None,
    now: pd.Timestamp,
    engine: str = "duckdb",
) -> DataSource:
    """A validated DataSource over a folder or DuckDB file; InvalidDataError on errors."""
    report, source = inspect_source(path, extracted_at=extracted_at, now=now, engine=engine)
    if source is None:
        raise InvalidDataError(report)
    return source


def source_from_frames(
    frames: Mapping[str, pd.DataFrame],
    *,
    event_map: EventMap | None = None,
    extracted_at: pd.Timestamp | None = None,
    now: pd.Timestamp,
) -> DataSource:
    """A validated DataSource over in-memory frames (same checks); InvalidDataError on errors."""
    report, source = inspect_frames(frames, event_map=event_map, extracted_at=extracted_at, now=now)
    if source is None:
        raise InvalidDataError(report)
    return source


def inspect_frames(
    frames: Mapping[str, pd.DataFrame],
    *,
    event_map: EventMap | None = None,
    extracted_at: pd.Timestamp | None = None,
    now: pd.Timestamp,
) -> tuple[ValidationReport, DataSource | None]:
    """Validate in-memory frames; the report, and the source when it has no errors."""
    issues: list[Issue] = []
    if event_map is None:
        message = "no event map given; using the demo company's (features may not fit)"
        issues.append(Issue("warning", None, None, message))
    raw = open_frames(frames)
    return _check_and_build(
        raw,
        event_map=event_map or DEMO_EVENT_MAP,
        declared=extracted_at,
        now=now,
        issues=issues,
        fit_default_map=event_map is None,
    )


def _open_spark(path: Path | CatalogTables) -> RawSource:
    from features.engine.session import require_pyspark

    require_pyspark()
    from features.engine.spark_engine import SparkEngine
    from features.engine.spark_read import check_folder, open_spark_catalog, open_spark_folder

    if isinstance(path, CatalogTables):
        return open_spark_catalog(SparkEngine(spark_session()), path)
    check_folder(Path(path))  # before starting a JVM for nothing
    return open_spark_folder(SparkEngine(spark_session()), Path(path))


def _file_event_map(path: Path | None, issues: list[Issue]) -> tuple[EventMap, bool]:
    """The event map of tables read from a catalog: a YAML file, else the demo map."""
    if path is None:
        message = (
            "no --event-map given for the catalog's tables; using the demo company's event "
            "map for the names that occur in these events: write your own map"
        )
        issues.append(Issue("warning", EVENT_MAP_FILE, None, message))
        return DEMO_EVENT_MAP, False
    try:
        return parse_event_map(path.read_text(), origin=str(path)), True
    except (EventMapError, OSError) as exc:
        issues.append(Issue("error", EVENT_MAP_FILE, None, f"malformed event map: {exc}"))
        return DEMO_EVENT_MAP, True


def _folder_event_map(folder: Path, issues: list[Issue]) -> tuple[EventMap, bool]:
    try:
        event_map, from_file = load_event_map(folder)
    except (EventMapError, OSError) as exc:
        issues.append(Issue("error", EVENT_MAP_FILE, None, f"malformed event map: {exc}"))
        return DEMO_EVENT_MAP, True
    if not from_file:
        message = (
            f"no {EVENT_MAP_FILE} beside the tables; using the demo company's event map for "
            "the names that occur in these events (roles with none are left out, so their "
            "features are absent rather than zero): write your own map"
        )
        issues.append(Issue("warning", EVENT_MAP_FILE, None, message))
    return event_map, from_file


def _manifest_end(folder: Path, issues: list[Issue]) -> pd.Timestamp | None:
    """The declared extraction time from manifest.yaml, if there is one."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = yaml.safe_load(path.read_text()) or {}
        value = manifest.get("extracted_at") if isinstance(manifest, dict) else None
        if value is None:
            return None
        return to_utc_naive(value)
    except (yaml.YAMLError, ValueError, TypeError, OSError) as exc:
        message = f"cannot read extracted_at as an ISO-8601 timestamp: {exc}"
        issues.append(Issue("error", MANIFEST_FILE, "extracted_at", message))
        return None


def to_utc_naive(value: object) -> pd.Timestamp:
    """A timestamp in naive UTC; an offset-free value is taken as UTC already."""
    if not isinstance(value, str | date | pd.Timestamp):
        raise TypeError(f"{value!r} is not a timestamp")
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        raise ValueError(f"{value!r} is not a timestamp")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def _check_and_build(
    raw: RawSource,
    *,
    event_map: EventMap,
    declared: pd.Timestamp | None,
    now: pd.Timestamp,
    issues: list[Issue],
    fit_default_map: bool = False,
) -> tuple[ValidationReport, DataSource | None]:
    """Run every check; build the typed views only when no error was found.

    `fit_default_map`: the event map is the demo company's default, not the user's, so
    it keeps only names that occur in these events. Another company's names would
    otherwise turn every role's features into zeros that look like real inactivity.
    """
    issues = [Issue(p.severity, p.table, None, p.message) for p in raw.problems] + issues
    unreadable = {p.table for p in raw.problems if p.severity == "error"}
    declared = to_utc_naive(declared) if declared is not None else None
    limit = declared if declared is not None else to_utc_naive(now)
    limit_name = "extraction time" if declared is not None else "current time (none declared)"
    try:
        found = validate_tables(
            raw.engine, raw.columns, event_map=event_map, limit=limit, limit_name=limit_name
        )
        # an unreadable table was already reported; "missing" would only repeat it
        issues += [i for i in found if not (i.table in unreadable and i.column is None)]
    except raw.engine.errors as exc:
        issues.append(Issue("error", None, None, f"could not read the data: {_first_line(exc)}"))
    report = ValidationReport(tuple(issues), origin=raw.origin)
    if not report.ok:
        raw.engine.close()
        return report, None
    try:
        source = _typed_source(raw, event_map=event_map, declared=declared)
        return report, _fit_event_map(source) if fit_default_map else source
    except raw.engine.errors as exc:
        raw.engine.close()
        failed = Issue("error", None, None, f"could not build the typed views: {_first_line(exc)}")
        return ValidationReport((*issues, failed), origin=raw.origin), None


def _first_line(exc: BaseException) -> str:
    # Spark's messages carry a JVM stack trace after the first line; DuckDB's are short
    text = str(exc).strip()
    if "duckdb" in type(exc).__module__ or not text:
        return str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _typed_source(
    raw: RawSource, *, event_map: EventMap, declared: pd.Timestamp | None
) -> DataSource:
    engine = raw.engine
    kinds: dict[str, Kind] = {n: "table" if n in raw.text_tables else "view" for n in raw.columns}
    for name in (n for n in TABLES if n in raw.columns):  # accounts first: others filter on it
        select = ", ".join(_typed_column(name, c.name) for c in TABLES[name].columns)
        # rows of unknown accounts are dropped (reported as a warning by validation)
        keep = (
            "" if name == "accounts" else " WHERE account_id IN (SELECT account_id FROM accounts)"
        )
        engine.create(name, f"SELECT {select} FROM _parsed_{name}{keep}", kind=kinds[name])
    columns = {
        name: frozenset(raw_cols) & {c.name for c in TABLES[name].columns}
        for name, raw_cols in raw.columns.items()
    }
    if (
        "tickets" in columns
        and "sentiment" not in columns["tickets"]
        and "text" in columns["tickets"]
    ):
        _score_ticket_sentiment(engine, kind=kinds["tickets"])
    data_end = declared if declared is not None else _latest_observed(engine, columns)
    return DataSource(
        engine=engine,
        tables=frozenset(columns),
        columns=columns,
        event_map=event_map,
        data_end=data_end,
        origin=raw.origin,
    )


def _fit_event_map(source: DataSource) -> DataSource:
    """The source with its (default) event map cut to the names its events contain."""
    if "events" not in source.tables:
        return source
    rows = source.engine.rows("SELECT DISTINCT event FROM events WHERE event IS NOT NULL")
    seen = {str(name) for (name,) in rows}
    fitted = {
        role: tuple(n for n in names if n in seen)
        for role, names in source.event_map.roles().items()
    }
    return replace(source, event_map=EventMap(**fitted))


def _typed_column(table: str, column: str) -> str:
    if table == "events" and column == "quantity":
        return "COALESCE(quantity, 1.0) AS quantity"
    return q(column)


def _score_ticket_sentiment(engine: Engine, *, kind: Kind) -> None:
    """Replace the tickets view or table by a table whose sentiment is scored from the text."""
    # VADER runs in Python: the tickets come to the driver once (far fewer rows than events)
    frame = engine.sql("SELECT * FROM tickets")
    scored = frame.assign(sentiment=score_texts(frame["text"].tolist()))
    engine.register("_scored_tickets", scored)
    engine.drop("tickets", kind="view" if kind == "view" else "table")
    select = ", ".join(
        f"CAST({q(c.name)} AS {SQL_TYPES[c.type]}) AS {q(c.name)}"
        for c in TABLES["tickets"].columns
    )
    engine.create("tickets", f"SELECT {select} FROM _scored_tickets", kind="table")
    engine.unregister("_scored_tickets")


def _latest_observed(engine: Engine, columns: Mapping[str, frozenset[str]]) -> pd.Timestamp:
    """The latest observed timestamp of the typed views: the data's end when none is declared."""
    parts = [
        f"SELECT MAX({q(col)}) AS t FROM {name}"
        for name, present in columns.items()
        for col in TABLES[name].observed
        if col in present
    ]
    rows = engine.rows(f"SELECT MAX(t) FROM ({' UNION ALL '.join(parts)})")
    row = rows[0] if rows else None
    if row is None or row[0] is None:
        raise InvalidDataError(
            ValidationReport(
                (Issue("error", None, None, "no observed timestamps: the data is empty"),)
            )
        )
    return pd.Timestamp(row[0])
