"""load_bundle against a real (tiny, SQLite) MLflow registry: found, missing, corrupt."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from api_factories import fallback_maps, tiny_model

from models.scoring.booster import ScoringModel
from serving.registry_client import ModelLoadError, load_bundle, load_model_folder
from serving.settings import ServingSettings


def _register(uri: str, root: Path, name: str, folder: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("t") or None
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment("t", artifact_location=str(root / "art"))
    )
    run = client.create_run(exp_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "champion", version.version)


def test_registry_states_from_missing_to_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    settings = ServingSettings(tracking_uri=uri, artifacts_dir=tmp_path / "dl")
    no_store = load_bundle(settings)
    assert no_store.churn is None and "no model store at" in str(no_store.fallback_reason)
    # Looking must not create the store: an empty one would hide the wrong folder.
    assert not (tmp_path / "mlflow.db").exists()

    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    missing = load_bundle(settings)
    assert missing.churn is None and "model not registered: nrr-churn@champion" in str(
        missing.fallback_reason
    )

    import os

    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    good = tmp_path / "good"
    tiny_model("churned").save(good)
    (good / "fallback_calibration.json").write_text(json.dumps(fallback_maps()["churn"]))
    _register(uri, tmp_path, "nrr-churn", good)
    corrupt = tmp_path / "corrupt"
    tiny_model("expanded").save(corrupt)
    (corrupt / "model.txt").write_text("not a lightgbm model")
    (corrupt / "fallback_calibration.json").write_text(json.dumps(fallback_maps()["expansion"]))
    _register(uri, tmp_path, "nrr-expansion", corrupt)

    bundle = load_bundle(settings)
    assert bundle.churn is not None and bundle.versions == {"churn": "1", "expansion": None}
    assert bundle.expansion is None and "model files corrupt" in str(bundle.fallback_reason)
    assert set(bundle.fallback_maps) == {"churn", "expansion"}


def test_model_with_features_unknown_to_the_registry_is_a_mismatch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"mau": rng.normal(size=100), "feature_from_the_future": rng.normal(size=100)})
    booster = lgb.train(
        {"objective": "binary", "verbose": -1}, lgb.Dataset(x, label=x["mau"] > 0), 3
    )
    ScoringModel(booster=booster, feature_names=tuple(x.columns), levels={}).save(tmp_path)
    with pytest.raises(ModelLoadError, match="feature list mismatch.*feature_from_the_future"):
        load_model_folder(tmp_path)


def test_without_an_artifacts_dir_downloads_leave_no_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    good = tmp_path / "good"
    tiny_model("churned").save(good)
    _register(uri, tmp_path, "nrr-churn", good)
    bundle = load_bundle(ServingSettings(tracking_uri=uri))
    # the booster lives in memory and still predicts once its files are gone
    assert bundle.churn is not None and bundle.versions["churn"] == "1"
    assert list(scratch.iterdir()) == []
    frame = pd.DataFrame({name: [1.0] for name in bundle.churn.feature_names})
    assert 0.0 <= float(bundle.churn.predict_proba(frame)[0]) <= 1.0
