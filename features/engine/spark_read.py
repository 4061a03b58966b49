"""Opening data in Spark: raw views `raw_<table>` for validation, as DuckDB's reader.

From a folder, each contract table is read from `<folder>/<table>.parquet` (a file or a
folder of part files, as Spark and most lakehouse exports write them) or `<folder>/<table>/`
(Parquet part files, or a Delta table when it holds `_delta_log` and the session can read
Delta). CSV is left to the DuckDB engine: Spark's CSV reader guesses types where the
contract's validation wants to see the raw text. From a catalog (`--catalog`), each table
is `<schema>.<table>` of the session's catalog. Spark's column types are named as DuckDB
names them, so validation's parsing rules (features/readers.parse_expr) apply unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features.contract import TABLES
from features.engine.catalog import CatalogTables
from features.engine.spark_engine import SparkEngine
from features.readers import RawSource, ReadProblem, SourceError

_DUCKDB_NAMES = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "char": "VARCHAR",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "decimal": "DECIMAL",
    "boolean": "BOOLEAN",
    "date": "DATE",
    # Spark's TIMESTAMP is an instant (shown in the session time zone, UTC here)
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ltz": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP",
}


def duckdb_type_name(spark_type: str) -> str:
    """DuckDB's name for a Spark SQL type (its simpleString); unknown types pass through."""
    base = spark_type.split("(")[0].strip().lower()
    return _DUCKDB_NAMES.get(base, spark_type.upper())


def open_spark_folder(engine: SparkEngine, folder: Path) -> RawSource:
    """Raw views over a folder of Parquet (or Delta) tables, in the engine's Spark session."""
    check_folder(folder)
    columns: dict[str, dict[str, str]] = {}
    problems: list[ReadProblem] = []
    for name in TABLES:
        location, reader = _locate(folder, name)
        if location is None:
            if (folder / f"{name}.csv").is_file():
                message = (
                    f"{name}.csv: the spark engine reads Parquet or Delta only; "
                    "write the table as Parquet or use --engine duckdb"
                )
                problems.append(ReadProblem("error", name, message))
            continue
        _expose(
            engine,
            name,
            lambda reader=reader, location=location: _read(engine, reader, location),
            columns,
            problems,
        )
    return RawSource(engine, columns, str(folder), folder, tuple(problems))


def open_spark_catalog(engine: SparkEngine, tables: CatalogTables) -> RawSource:
    """Raw views over the contract's tables named `<schema>.<table>` in the session's catalog.

    SourceError when the schema does not exist; a required table that is absent is an
    error naming it (an absent optional table is left to validation, as in a folder).
    """
    catalog = engine.spark.catalog
    if not catalog.databaseExists(tables.namespace):
        raise SourceError(f"--catalog {tables.namespace}: no such schema in the Spark catalog")
    columns: dict[str, dict[str, str]] = {}
    problems: list[ReadProblem] = []
    for name, spec in TABLES.items():
        full = tables.table(name)
        if not catalog.tableExists(full):
            if spec.required:
                problems.append(ReadProblem("error", name, f"required table {full} is missing"))
            continue
        _expose(engine, name, lambda full=full: engine.spark.table(full), columns, problems)
    return RawSource(engine, columns, str(tables), None, tuple(problems))


def _expose(
    engine: SparkEngine,
    name: str,
    read: Any,
    columns: dict[str, dict[str, str]],
    problems: list[ReadProblem],
) -> None:
    """Register `read()` as the raw view of table `name`, noting its columns or the problem."""
    try:
        frame = read()
        frame.createOrReplaceTempView(f"raw_{name}")
    except DeltaUnavailable as exc:
        problems.append(ReadProblem("error", name, str(exc)))
        return
    except engine.errors as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problems.append(ReadProblem("error", name, f"cannot read the table: {first}"))
        return
    columns[name] = {f.name: duckdb_type_name(f.dataType.simpleString()) for f in frame.schema}


def no_delta_message(location: Path) -> str:
    """The one line for a Delta table this session cannot read (pyspark alone has no Delta)."""
    return (
        f"{location} is a Delta table and this Spark session has no Delta reader: run on "
        "Databricks (Delta is built in), or start Spark with delta-spark's jars "
        "(pip install delta-spark; configure_spark_with_delta_pip), or export it as Parquet"
    )


def check_folder(folder: Path) -> None:
    """SourceError unless `folder` is a folder (the spark engine reads folders only)."""
    if not folder.is_dir():
        what = "no such file or folder" if not folder.exists() else "not a folder"
        raise SourceError(f"{folder}: {what}; the spark engine reads a folder of Parquet tables")


def _locate(folder: Path, name: str) -> tuple[Path | None, str]:
    for path in (folder / f"{name}.parquet", folder / name):
        if path.is_dir() and (path / "_delta_log").is_dir():
            return path, "delta"
        if path.exists():
            return path, "parquet"
    return None, ""


def _read(engine: SparkEngine, reader: str, location: Path) -> Any:
    if reader == "delta":
        try:
            return engine.spark.read.format("delta").load(str(location))
        except engine.errors as exc:
            # pyspark from PyPI has no Delta source ([DATA_SOURCE_NOT_FOUND] ... delta):
            # say what to install instead of Spark's "find packages at spark.apache.org"
            text = str(exc)
            if "DATA_SOURCE_NOT_FOUND" in text or "Failed to find the data source" in text:
                raise DeltaUnavailable(no_delta_message(location)) from None
            raise
    frame = engine.spark.read.parquet(str(location))
    return _nanosecond_timestamps(frame, location)


NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"


def nanosecond_columns(location: Path) -> dict[str, bool]:
    """Timestamp columns stored at nanosecond precision: name -> whether tz-aware (UTC).

    pandas writes datetimes as TIMESTAMP(NANOS) by default, which Spark refuses to read
    ("Illegal Parquet type: INT64 (TIMESTAMP(NANOS,true))"). Read from the first data file's
    schema (a folder's part files share it).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [location] if location.is_file() else sorted(location.rglob("*.parquet"))
    files = [f for f in files if not f.name.startswith(("_", "."))]
    if not files:
        return {}
    schema = pq.read_schema(files[0])
    return {
        field.name: field.type.tz is not None
        for field in schema
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns"
    }


def _nanosecond_timestamps(frame: Any, location: Path) -> Any:
    """Nanosecond timestamps (read as epoch nanoseconds under NANOS_AS_LONG) as Spark
    timestamps at microseconds, as DuckDB reads them: tz-aware ones as instants, naive ones
    as wall-clock TIMESTAMP_NTZ (session time zone UTC)."""
    from pyspark.sql import functions as F  # noqa: N812

    longs = {f.name for f in frame.schema if f.dataType.simpleString() == "bigint"}
    for name, aware in nanosecond_columns(location).items():
        if name not in longs:
            continue
        micros = F.timestamp_micros(F.expr(f"div(`{name}`, 1000)"))
        frame = frame.withColumn(name, micros if aware else micros.cast("timestamp_ntz"))
    return frame


class DeltaUnavailable(Exception):
    """The session cannot read Delta (see no_delta_message)."""
