"""Engines that run the feature SQL: DuckDB (embedded, the default) and Spark.

`make_engine(name)` gives a fresh engine of either kind; `spark_session()` the Spark
session every Spark user of this project shares (the engine, the CLI, the scoring UDF).
The engine is chosen per command (`--engine duckdb|spark`); nothing else in the feature
code knows which one runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from features.engine.base import Engine, EngineError, Statement
from features.engine.duckdb_engine import DuckDBEngine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("duckdb", "spark")
DEFAULT_ENGINE = "duckdb"

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "DuckDBEngine",
    "Engine",
    "EngineError",
    "Statement",
    "check_engine",
    "make_engine",
    "spark_session",
]


def check_engine(name: str) -> str:
    """The engine name, or EngineError naming the known ones."""
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; expected one of: {', '.join(ENGINES)}")
    return name


def spark_session(**kwargs: Any) -> SparkSession:
    """The shared Spark session (see features/engine/session.py); EngineError if none can start."""
    from features.engine.session import spark_session as start

    return start(**kwargs)


def make_engine(name: str = DEFAULT_ENGINE) -> Engine:
    """A new engine: DuckDB over a fresh connection, or Spark over the shared session."""
    if check_engine(name) == "duckdb":
        from features.readers import connect

        return DuckDBEngine(connect())
    from features.engine.spark_engine import SparkEngine

    return SparkEngine(spark_session())
