"""The forecast backtest table, attached to the MLflow run that trained the serving models.

Leadership's forecast is only as good as its backtest, so the table belongs with the run a
data scientist reviews before promotion: it is logged to the run behind the churn
champion (the models the forecast uses), as an artifact plus headline metrics.
"""

from __future__ import annotations

from pathlib import Path

from models.workspace import Workspace

CHURN_MODEL = "nrr-churn"
ALIAS = "champion"
ARTIFACT_DIR = "forecast_backtest"


def log_backtest_to_training_run(
    table_file: Path, figures: dict[str, float], *, settings: Workspace
) -> str:
    """Log the table and figures to the churn champion's training run; return its run id.

    Raises LookupError (with the reason) when there is no store or no champion to attach to.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = settings.resolved_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise LookupError(f"no MLflow store at {uri} (train first, or set --workdir)")
    client = MlflowClient(tracking_uri=uri)
    try:
        run_id = client.get_model_version_by_alias(CHURN_MODEL, ALIAS).run_id
    except MlflowException as exc:
        raise LookupError(f"{CHURN_MODEL} has no {ALIAS} in {uri}") from exc
    if not run_id:
        raise LookupError(f"{CHURN_MODEL}@{ALIAS} was registered without a training run")
    client.log_artifact(run_id, str(table_file), artifact_path=ARTIFACT_DIR)
    for name, value in figures.items():
        client.log_metric(run_id, f"forecast_backtest.{name}", value)
    return run_id
