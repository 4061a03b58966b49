"""The forecast backtest lands in the MLflow run that trained the churn champion."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models.workspace import Workspace, setup_tracking
from training.backtest_logging import log_backtest_to_training_run


def _store_with_champion(workdir: Path) -> tuple[Workspace, str]:
    import mlflow

    settings = Workspace(workdir=workdir)
    experiment_id = setup_tracking(settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("what", "a training run")
    client = MlflowClient(tracking_uri=settings.resolved_tracking_uri())
    client.create_registered_model("nrr-churn")
    version = client.create_model_version(
        "nrr-churn", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias("nrr-churn", "champion", version.version)
    return settings, run.info.run_id


def test_table_and_figures_go_to_the_champions_run(tmp_path: Path) -> None:
    settings, run_id = _store_with_champion(tmp_path / "mlops")
    table = tmp_path / "forecast_backtest.csv"
    pd.DataFrame({"quarter": ["2026Q1"], "covered": [True]}).to_csv(table, index=False)
    figures = {"pooled_coverage": 0.75, "pinball": 0.007}
    assert log_backtest_to_training_run(table, figures, settings=settings) == run_id
    client = MlflowClient(tracking_uri=settings.resolved_tracking_uri())
    run = client.get_run(run_id)
    assert run.data.metrics["forecast_backtest.pooled_coverage"] == 0.75
    logged = [a.path for a in client.list_artifacts(run_id, "forecast_backtest")]
    assert logged == ["forecast_backtest/forecast_backtest.csv"]


def test_missing_store_or_champion_is_a_clear_lookup_error(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("quarter\n2026Q1\n")
    with pytest.raises(LookupError, match="no MLflow store"):
        log_backtest_to_training_run(table, {}, settings=Workspace(workdir=tmp_path / "x"))
    settings = Workspace(workdir=tmp_path / "empty")
    setup_tracking(settings)
    with pytest.raises(LookupError, match="nrr-churn has no champion"):
        log_backtest_to_training_run(table, {}, settings=settings)
