"""`mlflow.pyfunc.spark_udf` over the champions gives `nrr score`'s numbers (issue 15, part 3).

A small simulated company is trained (the same workspace as test_api_matches_model, shared
under xdist); `nrr score` scores it. On Spark local[2], the registered champions applied as
UDFs the way docs/SPARK.md shows must give every account the same probabilities, sources
and rule scores (1e-9), and `nrr score --engine spark` must write the same CSV. Spark that
cannot start fails these tests: they never skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nrr.cli import build_app
from serving.cli import batch_score
from serving.settings import ServingSettings, get_settings
from training.demo_workspace import DemoWorkspace, prepare_workspace

pytestmark = pytest.mark.slow

TOLERANCE = 1e-9
NAMES = {"churn": "nrr-churn", "expansion": "nrr-expansion"}
NUMBERS = {
    "churn": ("churn_probability", "health_score"),
    "expansion": ("expansion_probability", "pqa_score"),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> DemoWorkspace:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    # The same company and folder as test_api_matches_model: trained once per run.
    return prepare_workspace(root / "api-matches-model", accounts=220, months=20, seed=23)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from serving.score_spark import spark_session

    session = spark_session()  # raises (the test fails) when Spark cannot start
    yield session


@pytest.fixture(scope="module")
def scored(workspace: DemoWorkspace) -> tuple[pd.DataFrame, pd.DataFrame, ServingSettings]:
    """nrr score's table and the snapshot rows it scored."""
    from serving.cli import _rows_with_history
    from serving.registry_client import load_bundle

    settings = ServingSettings(workdir=workspace.settings.workdir)
    table, bundle = batch_score(workspace.data_dir, as_of=None, settings=settings)
    assert bundle.fallback_reason is None, bundle.fallback_reason
    definition = load_bundle(settings).feature_definition()
    as_of = pd.Timestamp(workspace.source.data_end).normalize()
    rows, _, _ = _rows_with_history(definition.apply(workspace.source), as_of, definition.snapshot)
    return table, rows, settings


@pytest.mark.parametrize("role", ["churn", "expansion"])
def test_spark_udf_on_the_champion_equals_nrr_score(
    scored: tuple[pd.DataFrame, pd.DataFrame, ServingSettings],
    spark: Any,
    role: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyspark.sql.functions import struct

    # MLflow writes both URIs into os.environ: put the worker's values back afterwards
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    table, rows, settings = scored
    uri = settings.workspace().resolved_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # As a user would on Databricks: the snapshot table, the champion URI, its columns.
    model_uri = f"models:/{NAMES[role]}@champion"
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local")
    inputs = mlflow.models.get_model_info(model_uri).signature.inputs.input_names()
    frame = spark.createDataFrame(rows.drop(columns=["as_of", "renewal_at"]))
    present = [c for c in inputs if c in frame.columns]
    out = (
        frame.withColumn("scores", udf(struct(*present)))
        .select("account_id", "scores.*")
        .toPandas()
    )
    merged = table.merge(out, on="account_id", suffixes=("", "_udf"), validate="1:1")
    assert len(merged) == len(table) == len(rows) > 100
    for column in NUMBERS[role]:
        gap = np.abs(merged[column].astype(float) - merged[f"{column}_udf"].astype(float))
        assert float(gap.max()) <= TOLERANCE, (column, float(gap.max()))
    source = f"{role}_source"
    assert (merged[f"{source}_udf"] == merged[source]).all()
    assert (merged[source] == "model").all()


def test_nrr_score_engine_spark_writes_the_same_csv(
    workspace: DemoWorkspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: Any
) -> None:
    # Spark builds the rows (features.engine) and the UDFs score them; nrr score on DuckDB
    # is the reference. The engines' features agree to ~1e-14 (floating-point order of
    # operations), which can flip the last digit a driver text quotes: texts are compared
    # with their numbers masked, every number column within 1e-9.
    monkeypatch.setenv("NRR_WORKDIR", str(workspace.settings.workdir))
    get_settings.cache_clear()
    tables = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"{engine}.csv"
        args = ["score", "--data", str(workspace.data_dir), "--out", str(out), "--engine", engine]
        result = CliRunner().invoke(build_app(), args)
        assert result.exit_code == 0, result.output
        tables[engine] = pd.read_csv(out)
    get_settings.cache_clear()
    duck, spark_table = tables["duckdb"], tables["spark"]
    assert list(spark_table.columns) == list(duck.columns) and len(duck) > 100
    assert spark_table["account_id"].tolist() == duck["account_id"].tolist()
    for column in duck.columns:
        a, b = duck[column], spark_table[column]
        assert a.isna().tolist() == b.isna().tolist(), column
        if a.dtype.kind == "f":
            gap = float(np.nanmax(np.abs(a - b))) if a.notna().any() else 0.0
            assert gap <= TOLERANCE, (column, gap)
        elif a.dtype.kind in "iub":
            assert a.tolist() == b.tolist(), column
        else:
            assert masked(a) == masked(b), column


def masked(values: pd.Series) -> list[str]:
    """Text with every number replaced by '#'."""
    return [re.sub(r"[-+]?\d[\d,]*(\.\d+)?", "#", str(v)) for v in values.fillna("")]
