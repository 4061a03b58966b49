"""The SQL translation, statement by statement, without Java (features/engine/translate.py).

1. Each rewrite on a hand-written statement, checked against the SQL it must produce.
2. Every statement of a real snapshot build and of a validation run (captured from the
   DuckDB engine) translates for spark, databricks, snowflake and postgres with none of
   the constructs known to change results (`translate.KNOWN_BAD`); the same statements
   through plain SQLGlot do contain them, so the check would catch a missing rewrite.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlglot

from features.config import SnapshotConfig
from features.engine import DuckDBEngine, Statement
from features.engine.translate import DIALECTS, KNOWN_BAD, problems, translate
from features.load import load_source
from features.readers import open_path
from features.simulate import SimulationConfig, write_company
from features.snapshots import build_snapshots
from features.spine import build_spine
from features.validate import validate_tables

END = pd.Timestamp("2026-10-01")


def spark(sql: str) -> str:
    return translate(sql, "spark")


def test_epoch_difference_becomes_a_microsecond_difference() -> None:
    out = spark("SELECT EXTRACT(EPOCH FROM (a - b)) / 86400.0 AS d FROM t")
    assert "EXTRACT" not in out
    assert "UNIX_MICROS(a) - UNIX_MICROS(b)" in out
    assert "CAST(86400.0 AS DOUBLE)" in out
    snow = translate("SELECT EXTRACT(EPOCH FROM (a - b)) FROM t", "snowflake")
    assert "DATEDIFF(MICROSECOND, b, a)" in snow
    # Postgres has the EPOCH field and subtracts timestamps: left as written
    assert "EXTRACT(EPOCH FROM (a - b))" in translate(
        "SELECT EXTRACT(EPOCH FROM (a - b))", "postgres"
    )


def test_percentile_cont_stays_exact() -> None:
    sql = "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY h) FROM t"
    assert "PERCENTILE_APPROX" in sqlglot.transpile(sql, read="duckdb", write="spark")[0]
    assert spark(sql) == "SELECT PERCENTILE(h, CAST(0.5 AS DOUBLE)) FROM t"
    for dialect in ("snowflake", "postgres"):
        assert "PERCENTILE_CONT" in translate(sql, dialect)


def test_percentile_over_an_epoch_difference_rewrites_both() -> None:
    sql = "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (a - b))) FROM t"
    out = spark(sql)
    assert "PERCENTILE(" in out and "UNIX_MICROS(a)" in out and "EXTRACT" not in out


def test_decimal_literals_become_double_and_others_stay() -> None:
    out = spark("SELECT x * 30.0, 1e3, 7, '2.5', CAST(2.5 AS DOUBLE) FROM t")
    assert out == (
        "SELECT x * CAST(30.0 AS DOUBLE), CAST(1e3 AS DOUBLE), 7, '2.5', CAST(2.5 AS DOUBLE) FROM t"
    )


def test_validation_constructs() -> None:
    out = spark("SELECT TIMESTAMP 'infinity', isfinite(x) FROM t")
    assert "infinity" not in out.lower().replace("'infinity' as double", "")
    assert "9999-12-31 23:59:59.999999" in out
    assert "NOT ISNAN(x) AND ABS(x) <> CAST('Infinity' AS DOUBLE)" in out


def test_known_bad_list_catches_each_construct() -> None:
    bad = {
        "spark": "SELECT EXTRACT(EPOCH FROM (a - b)), PERCENTILE_APPROX(h, 0.5), 30.0 FROM t",
        "snowflake": "SELECT DATE_PART(EPOCH, (a - b)), GREATEST(a, b), 30.0 FROM t",
    }
    assert len(problems(bad["spark"], "spark")) == 3
    assert len(problems(bad["snowflake"], "snowflake")) == 3
    names = {b.name for b in KNOWN_BAD}
    assert {"EXTRACT(EPOCH ...)", "approximate percentile", "decimal literal"} <= names


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("translate") / "data"
    write_company(folder, SimulationConfig(accounts=60, months=14, seed=5, end=END))
    return folder


def _queries(trace: list[Statement]) -> list[str]:
    """The SQL text of every statement that runs SQL (drops name a relation only)."""
    return [s.sql for s in trace if s.op != "drop"]


@pytest.fixture(scope="module")
def build_statements(company: Path) -> list[str]:
    source = load_source(company, now=END)
    trace = source.engine.record()
    spine = build_spine(source)
    build_snapshots(source=source, spine=spine, config=SnapshotConfig(), partitions=2)
    return _queries(trace)


@pytest.fixture(scope="module")
def validation_statements(company: Path) -> list[str]:
    raw = open_path(company)
    assert isinstance(raw.engine, DuckDBEngine)
    trace = raw.engine.record()
    from features.event_map import load_event_map

    validate_tables(raw.engine, raw.columns, event_map=load_event_map(company)[0], limit=END)
    return _queries(trace)


def test_a_build_runs_dozens_of_statements(build_statements: list[str]) -> None:
    # spine, per-build staging, two partitions of staging and builders, labels
    assert len(build_statements) >= 60
    assert any("PERCENTILE_CONT" in s for s in build_statements)
    assert any("EXTRACT(EPOCH" in s for s in build_statements)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_build_statement_translates_without_a_known_bad_construct(
    build_statements: list[str], dialect: str
) -> None:
    failures = {}
    for sql in build_statements:
        found = problems(translate(sql, dialect), dialect)
        if found:
            failures[sql[:120]] = found
    assert not failures, failures


def test_plain_sqlglot_would_have_left_bad_constructs(build_statements: list[str]) -> None:
    raw = [sqlglot.transpile(s, read="duckdb", write="spark")[0] for s in build_statements]
    hit = [p for s in raw for p in problems(s, "spark")]
    assert any(p.startswith("EXTRACT") for p in hit)
    assert any(p.startswith("approximate percentile") for p in hit)
    assert any(p.startswith("decimal literal") for p in hit)


@pytest.mark.parametrize("dialect", ["spark", "databricks"])
def test_every_validation_statement_translates_for_spark(
    validation_statements: list[str], dialect: str
) -> None:
    assert len(validation_statements) >= 20
    failures = {s[:120]: problems(translate(s, dialect), dialect) for s in validation_statements}
    assert not {k: v for k, v in failures.items() if v}
