"""Writing the snapshot table back where the data lives: a table of the Spark catalog.

`nrr snapshots --engine spark --out-table <schema>.<table>` saves the snapshot frame (one
row per account and as_of, built on the driver) as a managed table, replacing one of that
name (on Databricks a Delta table of Unity Catalog; on plain Spark a Parquet table of the
session's warehouse). Its feature definition - what `nrr train` reads from the Parquet
file's metadata - goes into the table property `nrr.feature_definition` as JSON.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING

import pandas as pd

from features.definition import FeatureDefinition
from features.engine.catalog import check_table_name
from features.engine.spark_engine import _PANDAS_WARNING, _for_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROPERTY = "nrr.feature_definition"


def save_snapshot_table(
    spark: SparkSession, frame: pd.DataFrame, name: str, definition: FeatureDefinition
) -> None:
    """Save `frame` as the table `name` (replacing it), its definition as a table property."""
    check_table_name(name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
        data = spark.createDataFrame(_for_spark(frame))
    data.write.mode("overwrite").saveAsTable(name)
    text = json.dumps(definition.to_dict()).replace("\\", "\\\\").replace("'", "\\'")
    spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('{PROPERTY}' = '{text}')")


def read_table_definition(spark: SparkSession, name: str) -> FeatureDefinition | None:
    """The definition saved with a snapshot table (None: saved without one)."""
    rows = spark.sql(f"SHOW TBLPROPERTIES {check_table_name(name)}").collect()
    found = {row["key"]: row["value"] for row in rows}
    text = found.get(PROPERTY)
    return None if text is None else FeatureDefinition.from_dict(json.loads(text))
