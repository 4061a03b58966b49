"""Opening a data source as raw DuckDB views, and reading raw columns as contract types.

Raw views are named `raw_<table>` and show the input as given (CSV as text), so that
validation can see and report bad values itself. `parse_expr` turns one raw column into
its contract type with TRY_ casts: a non-null raw value whose parse is NULL is a bad value.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from features.contract import TABLES, ColumnType
from features.engine import DuckDBEngine, Engine

DUCKDB_SUFFIXES = (".duckdb", ".db")
SQL_TYPES: dict[ColumnType, str] = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
}
_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
_INTEGER = tuple(t for t in _NUMERIC if t not in ("FLOAT", "DOUBLE", "DECIMAL"))
# Timestamp types DuckDB reads from Parquet, DuckDB files and pandas frames. Naive ones are
# UTC already; time-zone aware ones hold an instant, read as UTC (the session time zone).
# The contract's TIMESTAMP has microseconds: coarser types widen exactly, nanosecond ones
# are cut to the microsecond (floor, as a text value's extra digits are).
_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "DATE")
_TIMESTAMPS_TZ = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")
_TIMESTAMPS_NS = ("TIMESTAMP_NS", "TIMESTAMPTZ_NS")


@dataclass(frozen=True)
class ReadProblem:
    severity: Literal["error", "warning"]
    table: str
    message: str


class SourceError(ValueError):
    """The path is not a readable data source (missing, or neither folder nor DuckDB file)."""


@dataclass(frozen=True)
class RawSource:
    engine: Engine
    # per table found: raw column name -> DuckDB type name of the raw view `raw_<table>`
    columns: Mapping[str, Mapping[str, str]]
    origin: str
    # where event_map.yaml and manifest.yaml live (None for in-memory frames)
    folder: Path | None
    problems: tuple[ReadProblem, ...] = ()
    # tables read from text (CSV): re-parsing them on every query is slow, so the loader
    # materialises their typed form once
    text_tables: frozenset[str] = frozenset()


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(*, memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC that spills to a temp folder, never the data's."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    # DuckDB 2.0 pushes TRY_CAST into the CSV reader as a hard cast, so one bad value
    # would abort the whole scan instead of being reported (seen with read_csv all_varchar)
    con.execute("SET disabled_optimizers='type_pushdown'")
    con.execute(f"SET memory_limit={_literal(memory_limit)}")
    spill = Path(tempfile.gettempdir()) / "nrr-duckdb-spill"
    con.execute(f"SET temp_directory={_literal(str(spill))}")
    return con


def open_path(path: Path) -> RawSource:
    """Raw views over a folder of TABLE.parquet / TABLE.csv files or a DuckDB file."""
    if path.is_dir():
        return _open_folder(path)
    if path.is_file() and path.suffix.lower() in DUCKDB_SUFFIXES:
        return _open_duckdb(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    raise SourceError(
        f"{path}: not a data source; expected a folder of TABLE.parquet/TABLE.csv files "
        f"or a DuckDB file ({', '.join(DUCKDB_SUFFIXES)})"
    )


def _open_folder(folder: Path) -> RawSource:
    con = connect()
    tables = _Tables()
    for name in TABLES:
        parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
        if parquet.is_file() and csv.is_file():
            message = f"both {parquet.name} and {csv.name} exist; using {parquet.name}"
            tables.problems.append(ReadProblem("warning", name, message))
        if parquet.is_file():
            reader = f"read_parquet({_literal(str(parquet))})"
        elif csv.is_file():
            # all text, so that bad values are seen and reported rather than guessed at
            reader = f"read_csv({_literal(str(csv))}, all_varchar=true, header=true, skip=0)"
        else:
            continue
        tables.create(con, name, f"CREATE VIEW raw_{name} AS SELECT * FROM {reader}")
    text = frozenset(n for n in tables.columns if not (folder / f"{n}.parquet").is_file())
    return RawSource(
        DuckDBEngine(con), tables.columns, str(folder), folder, tuple(tables.problems), text
    )


def _open_duckdb(path: Path) -> RawSource:
    con = connect()
    try:
        con.execute(f"ATTACH {_literal(str(path))} AS nrr_src (READ_ONLY)")
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot open as a DuckDB database ({exc})") from exc
    found = con.execute(
        "SELECT table_name, table_schema FROM information_schema.tables "
        "WHERE table_catalog = 'nrr_src' ORDER BY table_schema = 'main' DESC"
    ).fetchall()
    schemas: dict[str, str] = {}
    for table_name, schema in found:
        schemas.setdefault(str(table_name), str(schema))
    tables = _Tables()
    for name in TABLES:
        if name in schemas:
            source = f"nrr_src.{q(schemas[name])}.{q(name)}"
            tables.create(con, name, f"CREATE VIEW raw_{name} AS SELECT * FROM {source}")
    return RawSource(
        DuckDBEngine(con), tables.columns, str(path), path.parent, tuple(tables.problems)
    )


def open_frames(frames: Mapping[str, pd.DataFrame]) -> RawSource:
    """Raw tables copied from in-memory frames; keys that are not contract tables are reported."""
    con = connect()
    tables = _Tables()
    for name, frame in frames.items():
        if name not in TABLES:
            known = ", ".join(TABLES)
            message = f"not a contract table; ignored (known tables: {known})"
            tables.problems.append(ReadProblem("warning", name, message))
        elif not isinstance(frame, pd.DataFrame):
            message = f"expected a pandas DataFrame, got {type(frame).__name__}"
            tables.problems.append(ReadProblem("error", name, message))
        else:
            # copied once: scanning pandas string columns again for every check is slow
            try:
                con.register("_frame", frame)
            except (duckdb.Error, ValueError, TypeError) as exc:
                message = f"cannot read the frame: {exc}"
                tables.problems.append(ReadProblem("error", name, message))
                continue
            tables.create(con, name, f"CREATE TABLE raw_{name} AS SELECT * FROM _frame")
            con.unregister("_frame")
    return RawSource(DuckDBEngine(con), tables.columns, "<frames>", None, tuple(tables.problems))


@dataclass
class _Tables:
    """Raw tables created so far (name -> column types) and the problems met."""

    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[ReadProblem] = field(default_factory=list)

    def create(self, con: duckdb.DuckDBPyConnection, name: str, statement: str) -> None:
        try:
            con.execute(statement)
            described = con.execute(f"DESCRIBE raw_{name}").fetchall()
        except duckdb.Error as exc:
            con.execute(f"DROP VIEW IF EXISTS raw_{name}")
            self.problems.append(ReadProblem("error", name, f"cannot read the table: {exc}"))
            return
        self.columns[name] = {str(r[0]): str(r[1]) for r in described}


def _base(raw_type: str) -> str:
    return raw_type.split("(")[0].strip().upper()


def parse_expr(column: str, raw_type: str, type_: ColumnType) -> str | None:
    """SQL reading the raw column as its contract type (NULL when a value does not parse).

    None when the raw column's type cannot hold the contract type at all.
    """
    col, base = q(column), _base(raw_type)
    if type_ == "string":
        return col if base == "VARCHAR" else f"CAST({col} AS VARCHAR)"
    if type_ == "timestamp":
        if base == "VARCHAR":
            # a string without offset is read as UTC (session time zone), one with is converted
            return f"CAST(TRY_CAST({col} AS TIMESTAMPTZ) AS TIMESTAMP)"
        if base in (*_TIMESTAMPS, *_TIMESTAMPS_TZ):
            return f"CAST({col} AS TIMESTAMP)"
        if base in _TIMESTAMPS_NS:
            # DuckDB has no TIMESTAMPTZ_NS -> TIMESTAMP cast, and TIMESTAMP_NS -> TIMESTAMP
            # rounds: floor the UTC epoch nanoseconds to microseconds instead
            ns = f"epoch_ns({col})"
            return f"make_timestamp({ns} // 1000 - CAST({ns} % 1000 < 0 AS BIGINT))"
        return None
    if type_ in ("float", "int"):
        if base == "VARCHAR":
            number = f"TRY_CAST({col} AS DOUBLE)"
        elif base in _NUMERIC:
            number = f"CAST({col} AS DOUBLE)"
        else:
            return None
        # non-finite or (for int) fractional values do not parse either
        ok = f"isfinite({number})" + (f" AND {number} = round({number})" if type_ == "int" else "")
        value = f"TRY_CAST({number} AS BIGINT)" if type_ == "int" else number
        return f"(CASE WHEN {ok} THEN {value} END)"
    if base == "BOOLEAN":
        return col
    if base == "VARCHAR":
        return f"TRY_CAST({col} AS BOOLEAN)"
    if base in _INTEGER:
        return f"(CASE {col} WHEN 1 THEN TRUE WHEN 0 THEN FALSE END)"
    return None


def typed_select(table: str, raw_columns: Mapping[str, str]) -> str:
    """SELECT list of every contract column typed; absent or unreadable ones as typed NULL."""
    parts = []
    for spec in TABLES[table].columns:
        sql_type = SQL_TYPES[spec.type]
        expr = None
        if spec.name in raw_columns:
            expr = parse_expr(spec.name, raw_columns[spec.name], spec.type)
        parts.append(f"CAST({expr or 'NULL'} AS {sql_type}) AS {q(spec.name)}")
    return ", ".join(parts)
