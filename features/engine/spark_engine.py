"""The Spark engine: every statement translated (features/engine/translate.py), run by Spark SQL.

Staged temporary tables become cached temporary views (`CACHE TABLE name AS SELECT`,
eager), so each builder reads the staged rows from memory instead of recomputing their
lineage; dropping one uncaches it. Pandas frames (the spine, the event roles) are
registered as temporary views. Results come back to the driver through Arrow; they are
one row per (account, as_of) or smaller, never event rows.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.engine.base import Engine, EngineError, Kind
from features.engine.translate import translate

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# pyspark 4.3 warns on every conversion that it does not "fully support pandas >= 3.0";
# the parity test checks the conversions this engine uses.
_PANDAS_WARNING = "PySpark does not yet fully support pandas"
# ... and calls astype(copy=False), which pandas 3 deprecates, once per column
_COPY_WARNING = "The copy keyword is deprecated"


class SparkEngine(Engine):
    name = "spark"
    splits_builds = False

    def __init__(self, spark: SparkSession, *, dialect: str = "spark") -> None:
        super().__init__()
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        self.spark = spark
        self.dialect = dialect
        self.errors = (PySparkException, Py4JError)
        self._cached: dict[str, Any] = {}

    def translate(self, sql: str) -> str:
        return translate(sql, self.dialect)

    def _run(self, sql: str) -> Any:
        return self.spark.sql(self.translate(sql))

    def _sql(self, query: str, params: dict[str, object] | None) -> pd.DataFrame:
        if params:
            raise EngineError("query parameters are not supported on the spark engine")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
            warnings.filterwarnings("ignore", message=_COPY_WARNING)
            frame = self._run(query).toPandas()
        return _normalise(frame)

    def _rows(self, query: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._run(query).collect()]

    def _execute(self, statement: str) -> None:
        self._run(statement)

    def _create(self, name: str, select: str, kind: Kind, replace: bool) -> None:
        frame = self._run(select)
        if kind != "view":
            # CACHE TABLE, eagerly: the staged rows are computed once, here, and read from
            # memory after. (Through the DataFrame, not `CACHE TABLE name AS ...`: a view
            # made from SQL text re-resolves its names, so dropping a relation it was
            # built from - a registered frame - would break it.)
            frame = frame.cache()
            frame.count()
            self._cached[name] = frame
        frame.createOrReplaceTempView(name)

    def _drop(self, name: str, kind: str) -> None:
        cached = self._cached.pop(name, None)
        if cached is not None:
            cached.unpersist()
        self.spark.catalog.dropTempView(name)

    def register(self, name: str, frame: pd.DataFrame) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
            if frame.empty:
                # Arrow cannot infer Spark types from an empty frame: give them explicitly
                self.spark.createDataFrame([], _schema(frame)).createOrReplaceTempView(name)
                return
            self.spark.createDataFrame(_for_spark(frame)).createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def close(self) -> None:
        # The session is shared (the CLI's, a notebook's, a cluster's): leave it running.
        pass


def _for_spark(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_string_dtype(values.dtype):
            values = values.astype(object).where(values.notna(), None)
        elif pd.api.types.is_datetime64_any_dtype(values.dtype):
            values = values.astype("datetime64[us]")
        elif pd.api.types.is_unsigned_integer_dtype(values.dtype):
            values = values.astype("int64")  # Spark has no unsigned 64-bit type
        out[col] = values
    return pd.DataFrame(out, index=frame.index)


def _schema(frame: pd.DataFrame) -> Any:
    from pyspark.sql import types as T

    def spark_type(dtype: Any) -> Any:
        if pd.api.types.is_bool_dtype(dtype):
            return T.BooleanType()
        if pd.api.types.is_integer_dtype(dtype):
            return T.LongType()
        if pd.api.types.is_float_dtype(dtype):
            return T.DoubleType()
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return T.TimestampNTZType()
        return T.StringType()

    return T.StructType([T.StructField(str(c), spark_type(frame[c].dtype)) for c in frame.columns])


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Spark's frames in the dtypes DuckDB returns: timestamps at microsecond resolution."""
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col].dtype):
            frame[col] = frame[col].astype("datetime64[us]")
    return frame
