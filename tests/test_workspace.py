"""One workspace for every command: the same default, the same overrides, no stray stores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.config import SnapshotConfig
from features.definition import FeatureDefinition, read_definition, write_snapshots
from features.event_map import EventMap
from models.workspace import Workspace, setup_tracking
from serving.settings import ServingSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("NRR_WORKDIR", "NRR_TRACKING_URI", "MLFLOW_TRACKING_URI", "NRR_API_KEYS_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_default_is_mlops_in_the_current_folder(tmp_path: Path) -> None:
    ws = Workspace.resolve()
    assert ws.root == tmp_path / "mlops"
    assert ws.resolved_tracking_uri() == f"sqlite:///{tmp_path / 'mlops' / 'mlflow.db'}"
    assert ws.optuna_storage() == f"sqlite:///{tmp_path / 'mlops' / 'optuna.db'}"
    assert ws.api_keys_path == tmp_path / "mlops" / "api_keys.json"


def test_option_beats_environment_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NRR_WORKDIR", str(tmp_path / "env"))
    assert Workspace.resolve().root == tmp_path / "env"
    assert Workspace.resolve(tmp_path / "opt").root == tmp_path / "opt"


def test_training_and_serving_resolve_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NRR_WORKDIR", str(tmp_path / "shared"))
    serving = ServingSettings()
    assert (
        serving.workspace().resolved_tracking_uri() == Workspace.resolve().resolved_tracking_uri()
    )
    assert serving.keys_path() == tmp_path / "shared" / "api_keys.json"
    assert ServingSettings(api_keys_path=tmp_path / "k.json").keys_path() == tmp_path / "k.json"


def test_remote_server_from_mlflow_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    ws = Workspace.resolve()
    assert ws.resolved_tracking_uri() == "http://mlflow.internal:5000"
    assert ws.artifact_location() is None and ws.store_exists()


def test_looking_never_creates_a_store(tmp_path: Path) -> None:
    ws = Workspace.resolve()
    assert not ws.store_exists()
    assert ServingSettings().missing_store() is not None
    assert not (tmp_path / "mlops").exists() and not (tmp_path / "mlflow.db").exists()


def test_setup_tracking_leaves_the_users_variable_alone(tmp_path: Path) -> None:
    import os

    import mlflow

    first = Workspace.resolve(tmp_path / "one")
    setup_tracking(first)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    # A second workspace in the same process is not mistaken for a remote server.
    assert Workspace.resolve(tmp_path / "two").tracking_uri is None
    assert first.store_exists()
    # Nested runs (Optuna trials) land in the workspace's experiment, not "Default".
    with mlflow.start_run() as parent, mlflow.start_run(nested=True) as child:
        pass
    assert child.info.experiment_id == parent.info.experiment_id
    assert mlflow.get_experiment(child.info.experiment_id).name == first.experiment_name
    assert not (tmp_path / "mlruns").exists()


def test_snapshot_file_carries_its_feature_definition(tmp_path: Path) -> None:
    definition = FeatureDefinition(
        SnapshotConfig(horizon_days=60, grace_days=14, min_tenure_days=30),
        EventMap(core_features=("opened_board",), admin_events=("changed_sso",)),
    )
    frame = pd.DataFrame({"account_id": ["a"], "as_of": [pd.Timestamp("2025-01-01")]})
    path = tmp_path / "snaps.parquet"
    write_snapshots(frame, path, definition)
    assert read_definition(path) == definition
    assert pd.read_parquet(path).equals(frame)
    frame.to_parquet(tmp_path / "plain.parquet")
    assert read_definition(tmp_path / "plain.parquet") is None
    restored = FeatureDefinition.from_dict(definition.to_dict())
    assert restored.snapshot.grace_days == 14
    assert restored.event_map is not None and restored.event_map.core_features == ("opened_board",)


def test_the_workspace_store_is_also_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import mlflow

    # a registry URI set earlier in the process (a notebook, another workspace) must not
    # receive this workspace's models, and the user's variable stays as it was
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", elsewhere)
    mlflow.set_registry_uri(elsewhere)
    ws = Workspace.resolve(tmp_path / "one")
    setup_tracking(ws)
    assert mlflow.get_registry_uri() == ws.resolved_tracking_uri()
    assert os.environ["MLFLOW_REGISTRY_URI"] == elsewhere
