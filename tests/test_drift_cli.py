"""Drift check end to end: reference stored at training, `nrr drift`, the serving bundle."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.config import SnapshotConfig
from features.load import load_source
from features.simulate import SimulationConfig, write_company
from features.snapshots import build_snapshots
from features.spine import build_spine
from models.monitoring.drift import (
    REFERENCE_FILE,
    DriftReference,
    fit_reference,
    population_stability,
)
from models.scoring.booster import ScoringModel, model_features
from models.workspace import Workspace
from nrr.cli import build_app
from serving.drift_status import drift_status
from serving.registry_client import load_bundle
from serving.settings import ServingSettings
from training.config import load_experiment
from training.drift_cli import DRIFT_EXPERIMENT
from training.evaluate import labelled_rows
from training.pipeline import train

REPO = Path(__file__).resolve().parents[1]
FAST = REPO / "experiments" / "fast.yaml"
END = pd.Timestamp("2026-10-01")
SHIFTED = {"arr", "tenure_days", "segment"}
pytestmark = pytest.mark.slow  # a simulated company and one training run: about 40 s


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company")
    write_company(folder, SimulationConfig(accounts=200, months=18, seed=5, end=END))
    return folder


@pytest.fixture(scope="module")
def snapshots(company: Path) -> pd.DataFrame:
    source = load_source(company, now=END + pd.Timedelta(days=1))
    config = SnapshotConfig.model_validate({})
    return build_snapshots(source=source, spine=build_spine(source), config=config)


def shift(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with three features deliberately moved: scaled, offset, re-mapped category."""
    out = rows.copy()
    out["arr"] = out["arr"] * 3.0
    out["tenure_days"] = out["tenure_days"] + 400.0
    out["segment"] = out["segment"].replace({"SMB": "Enterprise", "Mid-Market": "Enterprise"})
    return out


def test_shifted_copy_of_demo_snapshots_flags_exactly_the_shifted_features(
    snapshots: pd.DataFrame,
) -> None:
    rows = labelled_rows(snapshots)
    features = model_features(rows)
    assert SHIFTED <= set(features)
    reference = fit_reference(rows, features)
    table = population_stability(reference, shift(rows)).set_index("feature")
    flagged = set(table.index[table["psi"] >= 0.2])
    assert flagged == SHIFTED, table.head(8)
    assert (table.drop(index=list(SHIFTED))["psi"] < 0.1).all()
    assert set(table.index[:3]) == SHIFTED


@pytest.fixture(scope="module")
def trained(snapshots: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A churn-only fast training run (expansion has no champion, on purpose)."""
    settings = Workspace(workdir=tmp_path_factory.mktemp("store"))
    config = load_experiment(FAST).model_copy(update={"targets": ["churn"]})
    start = time.perf_counter()
    result = train(snapshots=snapshots, config=config, settings=settings)
    assert result.outcomes["churn"].registered, result.outcomes["churn"].message
    assert time.perf_counter() - start < 60
    return settings


def test_registered_model_carries_its_drift_reference(
    trained: Workspace, snapshots: pd.DataFrame
) -> None:
    mlflow.set_tracking_uri(trained.resolved_tracking_uri())
    local = Path(mlflow.artifacts.download_artifacts("models:/nrr-churn@champion"))
    path = local / "extra_files" / REFERENCE_FILE
    assert path.is_file()
    reference = DriftReference.from_dict(json.loads(path.read_text()))
    model = ScoringModel.load(local)
    assert [f.name for f in reference.features] == list(model.feature_names)
    labelled = labelled_rows(snapshots)
    # fitted on the latest three training dates only (drift.reference_periods)
    recent = sorted(labelled["as_of"].unique())[-3:]
    assert reference.rows == int(labelled["as_of"].isin(recent).sum())
    assert reference.thresholds == (0.1, 0.2)
    assert reference.meta["as_of_min"] == str(pd.Timestamp(recent[0]).date())
    assert reference.meta["as_of_max"] == str(labelled["as_of"].max().date())


def _reference_rows(snapshots: pd.DataFrame) -> pd.DataFrame:
    """The training rows the stored reference was fitted on: the latest three dates."""
    labelled = labelled_rows(snapshots)
    return labelled[labelled["as_of"].isin(sorted(labelled["as_of"].unique())[-3:])]


def _shifted_file(snapshots: pd.DataFrame, folder: Path) -> Path:
    """The snapshots plus, one month after, a shifted copy of the reference rows as latest."""
    latest = shift(_reference_rows(snapshots))
    latest["as_of"] = snapshots["as_of"].max() + pd.DateOffset(months=1)
    latest["account_id"] = [f"copy-{i}" for i in range(len(latest))]
    latest["account_id"] = latest["account_id"].astype("string")
    path = folder / "shifted.parquet"
    pd.concat([snapshots, latest], ignore_index=True).to_parquet(path)
    return path


def test_nrr_drift_ranks_flags_and_logs_the_shifted_features(
    trained: Workspace, snapshots: pd.DataFrame, tmp_path: Path
) -> None:
    summary_path = tmp_path / "drift.json"
    args = ["drift", "--snapshots", str(_shifted_file(snapshots, tmp_path))]
    args += ["--workdir", str(trained.workdir), "--experiment", str(FAST)]
    result = CliRunner().invoke(build_app(), [*args, "--out", str(summary_path)])
    assert result.exit_code == 0, result.output
    assert "nrr-churn v1" in result.output and "significant" in result.output
    summary = json.loads(summary_path.read_text())
    churn = summary["models"]["churn"]
    assert set(churn["significant_features"]) == SHIFTED
    assert churn["moderate_features"] == []
    assert [row["feature"] for row in churn["table"][:3]] == churn["significant_features"]
    assert "no champion" in summary["skipped"]["expansion"]
    mlflow.set_tracking_uri(trained.resolved_tracking_uri())
    run = MlflowClient().get_run(summary["mlflow_runs"]["churn"])
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == DRIFT_EXPERIMENT
    assert run.data.metrics["psi_arr"] >= 0.2 and run.data.metrics["psi_mau"] < 0.1
    assert run.data.metrics["significant"] == 3
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert {"drift_table.csv", "drift_summary.json"} <= artifacts


def test_nrr_drift_builds_the_latest_snapshot_from_raw_tables(
    trained: Workspace, company: Path, tmp_path: Path
) -> None:
    args = ["drift", "--data", str(company), "--as-of", "2026-09-15", "--model", "churn"]
    args += ["--workdir", str(trained.workdir), "--experiment", str(FAST)]
    result = CliRunner().invoke(build_app(), [*args, "--out", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "d.json").read_text())
    assert summary["as_of"] == "2026-09-01"
    assert summary["models"]["churn"]["features"] > 10


def test_nrr_drift_errors_clearly_without_champion_or_store(
    trained: Workspace, snapshots: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "snaps.parquet"
    snapshots.to_parquet(path)
    base = ["drift", "--snapshots", str(path), "--experiment", str(FAST)]
    runner = CliRunner()
    no_champion = runner.invoke(
        build_app(), [*base, "--workdir", str(trained.workdir), "--model", "expansion"]
    )
    assert no_champion.exit_code == 1
    assert "nrr-expansion has no champion" in no_champion.output
    no_store = runner.invoke(build_app(), [*base, "--workdir", str(tmp_path / "nothing")])
    assert no_store.exit_code == 1
    assert "no MLflow store" in no_store.output


def test_served_bundle_computes_drift_of_served_snapshots(
    trained: Workspace, snapshots: pd.DataFrame, tmp_path: Path
) -> None:
    settings = ServingSettings(
        tracking_uri=trained.resolved_tracking_uri(), artifacts_dir=tmp_path, api_keys_path=tmp_path
    )
    bundle = load_bundle(settings)
    assert set(bundle.drift_references) == {"churn"}
    served = shift(_reference_rows(snapshots))
    drift, reason = drift_status(bundle, served)
    assert drift is not None and drift["expansion"] is None
    assert drift["churn"] is not None
    assert set(drift["churn"]["significant_features"]) == SHIFTED
    assert reason is not None and "expansion: no model served" in reason
