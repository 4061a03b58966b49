"""`nrr score --engine spark`: the champions' probabilities and rule scores from their
registered pyfunc, applied with `mlflow.pyfunc.spark_udf` on Spark.

The UDF gives each row its calibrated probability, source and rule score (health for churn,
PQA for expansion), computed on the executors by `models.scoring.spark_udf`. Drivers,
signals, plays and renewals need the whole scored population (driver percentiles) and the
accounts' earlier snapshots, and they are one row per account: they are added on the driver
by the same `serving.scoring` code as `nrr score`, which also checks that both agree.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.scoring.spark_udf import OUTPUTS, RULES_PATH_KEY
from serving.registry_client import ModelBundle
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

# The UDF and `nrr score` run the same float64 code; anything above this is a bug.
TOLERANCE = 1e-9
ROW_KEY = "_nrr_row"


class ScoresModelError(ValueError):
    """A registered version cannot give the scores on Spark (absent, or not a scores pyfunc)."""


def scores_model_uri(settings: ServingSettings, role: str, *, version: str | None = None) -> str:
    """The registry URI of a role's scores pyfunc (a version, else the served alias), checked.

    Raises ScoresModelError with one line when the version does not exist or predates the
    scores pyfunc (its pyfunc would return the bare booster output).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    name = settings.churn_model if role == "churn" else settings.expansion_model
    uri = f"models:/{name}/{version}" if version else f"models:/{name}@{settings.model_alias}"
    use_workspace(settings)
    try:
        info = mlflow.models.get_model_info(uri)
    except MlflowException as exc:
        what = f"version {version}" if version else f"alias {settings.model_alias!r}"
        raise ScoresModelError(f"{name} has no {what} in {_store(settings)}") from exc
    outputs = info.signature.outputs.input_names() if info.signature else []
    if list(outputs) != list(OUTPUTS[role]):
        raise ScoresModelError(
            f"{uri} is not a scores model (registered before `nrr train` logged one): "
            "train again to score on Spark"
        )
    return uri


def _store(settings: ServingSettings) -> str:
    return settings.workspace().resolved_tracking_uri()


def use_workspace(settings: ServingSettings) -> None:
    """Point MLflow's tracking and registry at the workspace's store."""
    import mlflow

    uri = _store(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def udf_scores(
    spark: SparkSession,
    rows: pd.DataFrame,
    *,
    uri: str,
    role: str,
    rules_path: str | None = None,
) -> pd.DataFrame:
    """The role's scores pyfunc applied to `rows` as a Spark UDF, in the rows' order."""
    import mlflow.pyfunc
    from pyspark.sql.functions import struct

    config = {RULES_PATH_KEY: rules_path} if rules_path else None
    with _quiet():
        udf = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local", model_config=config)
        names = mlflow.models.get_model_info(uri).signature.inputs.input_names()
        # Only the columns the model reads, and only those present: an absent feature
        # column is what makes the rules answer, as in `nrr score`.
        present = [c for c in names if c in rows.columns]
        frame: SparkFrame = spark.createDataFrame(
            rows.loc[:, present].assign(**{ROW_KEY: np.arange(len(rows))})
        )
        scored = frame.select(ROW_KEY, udf(struct(*present)).alias("s")).select(ROW_KEY, "s.*")
        out: pd.DataFrame = scored.toPandas()
    out = out.sort_values(ROW_KEY).reset_index(drop=True)
    return out.drop(columns=[ROW_KEY])


@contextmanager
def _quiet() -> Iterator[None]:
    """Without MLflow's advice to recreate the training environment (the UDF runs in this
    one on purpose: the executors import this project) and pyspark's pandas-3 warning."""
    log = logging.getLogger("mlflow.pyfunc")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
            yield
    finally:
        log.setLevel(level)


def merge_udf_scores(
    table: pd.DataFrame, scores: pd.DataFrame, *, role: str, version: str
) -> pd.DataFrame:
    """`table` (nrr score's rows) with the role's columns from the UDF, after checking they
    agree: numbers within TOLERANCE, sources and bands equal."""
    if len(scores) != len(table):
        raise RuntimeError(f"{role} UDF returned {len(scores)} rows for {len(table)}")
    out = table.copy()
    for column in OUTPUTS[role]:
        mine, theirs = table[column], scores[column]
        if mine.dtype.kind == "f" or column.endswith(("_probability", "_score")):
            a = np.asarray(mine, dtype="float64")
            b = np.asarray(theirs, dtype="float64")
            same = np.isnan(a) == np.isnan(b)
            gap = np.abs(np.nan_to_num(a) - np.nan_to_num(b))
            if not same.all() or (gap > TOLERANCE).any():
                raise RuntimeError(
                    f"{role} UDF v{version} disagrees with nrr score on {column} "
                    f"(max {float(gap.max()):.3g}): report this as a bug"
                )
            out[column] = b
        else:
            a_s = mine.astype(object).where(mine.notna(), None).tolist()
            b_s = theirs.astype(object).where(theirs.notna(), None).tolist()
            if a_s != b_s:
                raise RuntimeError(f"{role} UDF v{version} disagrees with nrr score on {column}")
    return out


def score_on_spark(
    rows: pd.DataFrame,
    *,
    bundle: ModelBundle,
    settings: ServingSettings,
    score_rows: Callable[[pd.DataFrame], pd.DataFrame],
    spark: SparkSession | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> pd.DataFrame:
    """nrr score's table of `rows`, its probability and rule-score columns from the UDFs.

    `score_rows` is nrr score's own scoring of the rows (drivers, signals, plays). Each role
    whose champion loaded is scored by that exact version's pyfunc; a role the rules answer
    (no model, or features absent) keeps the rules' columns.
    """
    table = score_rows(rows)
    if rows.empty:
        return table
    spark = spark or spark_session()
    rules = str(settings.rules_path) if settings.rules_path else None
    for role in OUTPUTS:
        version = bundle.versions.get(role)
        if bundle.model(role) is None or version is None:
            continue
        uri = scores_model_uri(settings, role, version=version)
        say(f"{role}: scoring {len(rows)} rows with {uri} as a Spark UDF")
        scores = udf_scores(spark, rows, uri=uri, role=role, rules_path=rules)
        table = merge_udf_scores(table, scores, role=role, version=version)
    return table


def spark_session() -> SparkSession:
    """The project's shared Spark session (features.engine): the active one on a cluster,
    else local[2] with this interpreter as the workers' Python; EngineError if none starts."""
    from features.engine import spark_session as shared

    return shared(app_name="nrr-score")
