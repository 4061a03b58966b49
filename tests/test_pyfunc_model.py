"""The registered pyfunc gives `nrr score`'s numbers (issue 15, part 3).

A fast experiment trains on synthetic snapshots (a LightGBM churn model and a logistic
expansion model, as in test_training_pipeline). Each registered version must load as an
MLflow pyfunc without pickle and, on raw snapshot rows (categories as strings), return the
calibrated probability, its source and the rule score that `nrr score`'s scoring step
(`serving.scoring.score_snapshots` over the bundle `serving.registry_client` loads) reports
for the same rows, within 1e-9; where `nrr score` answers from the rules (a model feature
column absent), so does the pyfunc, with the registered fallback map applied to the rule
score (checked here with numpy from the JSON file).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from experiments import DEFAULT_RULES, FAST_EXPERIMENT
from models.rules.config import load_rules_config
from models.workspace import Workspace
from serving.registry_client import load_bundle
from serving.scoring import score_snapshots
from serving.settings import ServingSettings
from serving.state import align_bundle
from tests.test_training_pipeline import with_interaction
from tests.training_factories import make_snapshots
from training.config import load_experiment
from training.pipeline import train

TOLERANCE = 1e-9
NAMES = {"churn": "nrr-churn", "expansion": "nrr-expansion"}
COLUMNS = {
    "churn": ("churn_probability", "churn_source", "health_score", "health_band"),
    "expansion": ("expansion_probability", "expansion_source", "pqa_score", "pqa_band"),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, pd.DataFrame]]:
    workspace = Workspace(workdir=tmp_path_factory.mktemp("pyfunc-store"))
    snapshots = with_interaction(make_snapshots(n_accounts=300, months=24, seed=11))
    train(snapshots=snapshots, config=load_experiment(FAST_EXPERIMENT), settings=workspace)
    uri = workspace.resolved_tracking_uri()
    latest = snapshots[snapshots["as_of"] == snapshots["as_of"].max()].reset_index(drop=True)
    # MLflow writes both URIs into os.environ: restored after the module, or every later
    # test of this worker (and the notebook kernels it starts) would read this store.
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    with pytest.MonkeyPatch.context() as patch:
        for name in names:
            if name in os.environ:
                patch.setenv(name, os.environ[name])
            else:
                patch.delenv(name, raising=False)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        # What serving sets: a model that needs unpickling must fail to load here.
        patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
        yield workspace, latest


def nrr_score(workspace: Workspace, rows: pd.DataFrame, rules: Any = None) -> pd.DataFrame:
    """`nrr score`'s scoring step (serving/cli.py batch_score) on snapshot rows."""
    bundle = align_bundle(load_bundle(ServingSettings(workdir=workspace.workdir)), rows)
    return score_snapshots(
        rows, bundle=bundle, rules=rules or load_rules_config(), drivers_k=0
    ).reset_index(drop=True)


def pyfunc(role: str, **kwargs: Any) -> Any:
    return mlflow.pyfunc.load_model(f"models:/{NAMES[role]}@champion", **kwargs)


def assert_same(expected: pd.DataFrame, got: pd.DataFrame, role: str) -> float:
    prob, source, score, band = COLUMNS[role]
    assert list(got.columns) == list(COLUMNS[role])
    assert len(got) == len(expected)
    worst = 0.0
    for column in (prob, score):
        a = expected[column].to_numpy(dtype="float64")
        b = got[column].to_numpy(dtype="float64")
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        gap = float(np.nanmax(np.abs(a - b))) if np.isfinite(a).any() else 0.0
        assert gap <= TOLERANCE, (column, gap)
        worst = max(worst, gap)
    assert got[source].tolist() == expected[source].tolist()
    assert got[band].fillna("-").tolist() == expected[band].fillna("-").tolist()
    return worst


@pytest.mark.parametrize("role", ["churn", "expansion"])
def test_pyfunc_predict_equals_nrr_score(store: tuple[Workspace, pd.DataFrame], role: str) -> None:
    workspace, rows = store
    expected = nrr_score(workspace, rows)
    got = pyfunc(role).predict(rows)
    assert_same(expected, got, role)
    # Both came from the model, and the probabilities are not a constant.
    assert (got[COLUMNS[role][1]] == "model").all()
    assert got[COLUMNS[role][0]].nunique() > 10


def test_both_recipes_are_served_as_pyfunc(store: tuple[Workspace, pd.DataFrame]) -> None:
    client = MlflowClient()
    recipes = {
        role: client.get_model_version(name, "1").tags["recipe"] for role, name in NAMES.items()
    }
    assert recipes == {"churn": "lightgbm", "expansion": "logistic"}


def test_raw_categories_pass_the_signature(store: tuple[Workspace, pd.DataFrame]) -> None:
    # The prototype's signature declared every feature a double: "Starter" failed it.
    workspace, rows = store
    raw = rows.astype({"plan": object, "segment": object})
    raw.loc[0, "plan"] = "Unheard-of plan"  # an unknown level: LightGBM's missing branch
    got = pyfunc("churn").predict(raw)
    assert_same(nrr_score(workspace, raw), got, "churn")
    schema = {c.name: c.type.name for c in pyfunc("churn").metadata.get_input_schema().inputs}
    assert schema["plan"] == "string" and schema["segment"] == "string"
    assert schema["mau"] == "double"


def test_absent_feature_column_falls_back_to_the_rules_like_nrr_score(
    store: tuple[Workspace, pd.DataFrame], tmp_path: Path
) -> None:
    workspace, rows = store
    model = pyfunc("churn")
    lacking = rows.drop(columns=["usage_trend_30d"])  # a churn model feature
    got = model.predict(lacking)
    expected = nrr_score(workspace, lacking)
    assert (expected["churn_source"] == "rules").all()
    assert_same(expected, got, "churn")
    # Independently: the registered isotonic map (JSON) applied to the health score.
    local = Path(
        mlflow.artifacts.download_artifacts("models:/nrr-churn@champion", dst_path=str(tmp_path))
    )
    spec = json.loads((local / "extra_files" / "fallback_calibration.json").read_text())
    health = got["health_score"].to_numpy(dtype="float64")
    mapped = np.interp(health, spec["thresholds"], spec["probabilities"])
    np.testing.assert_allclose(got["churn_probability"], mapped, rtol=0, atol=TOLERANCE)


def test_version_holds_code_and_native_files_not_pickles(
    store: tuple[Workspace, pd.DataFrame], tmp_path: Path
) -> None:
    import lightgbm as lgb

    local = Path(
        mlflow.artifacts.download_artifacts("models:/nrr-churn@champion", dst_path=str(tmp_path))
    )
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert {"MLmodel", "pyfunc_code.py", "extra_files/model.txt", "extra_files/model.json"} <= files
    assert {"extra_files/rules.json", "extra_files/fallback_calibration.json"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]
    assert len([f for f in files if f.endswith("model.json")]) == 1  # one model, read by serving
    # The native booster is also the version's LightGBM flavour, as before this change.
    booster = mlflow.lightgbm.load_model("models:/nrr-churn@champion")
    assert isinstance(booster, lgb.Booster)
    assert (
        booster.model_to_string()
        == lgb.Booster(model_file=str(local / "extra_files" / "model.txt")).model_to_string()
    )


def test_rules_path_in_model_config_scores_as_nrr_score_with_those_rules(
    store: tuple[Workspace, pd.DataFrame], tmp_path: Path
) -> None:
    # nrr score reads NRR_RULES_PATH; the UDF takes the same file through model_config.
    workspace, rows = store
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    for band in raw["health"]["bands"]:
        if band["min"] > 0:
            band["min"] += 7
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    rules = load_rules_config(path)
    got = pyfunc("churn", model_config={"rules_path": str(path)}).predict(rows)
    assert_same(nrr_score(workspace, rows, rules=rules), got, "churn")
    default = pyfunc("churn").predict(rows)
    assert got["health_band"].tolist() != default["health_band"].tolist()


def test_unknown_model_version_is_one_line(store: tuple[Workspace, pd.DataFrame]) -> None:
    from serving.score_spark import ScoresModelError, scores_model_uri

    workspace, _ = store
    settings = ServingSettings(workdir=workspace.workdir)
    assert scores_model_uri(settings, "churn", version="1") == "models:/nrr-churn/1"
    with pytest.raises(ScoresModelError) as caught:
        scores_model_uri(settings, "churn", version="99")
    assert str(caught.value).startswith("nrr-churn has no version 99 in ")
    assert "\n" not in str(caught.value)
    alias = settings.model_copy(update={"model_alias": "gold"})
    with pytest.raises(ScoresModelError, match="nrr-expansion has no alias 'gold'"):
        scores_model_uri(alias, "expansion")


def test_a_version_without_the_scores_pyfunc_is_refused(
    store: tuple[Workspace, pd.DataFrame],
) -> None:
    # Registered the way releases before this one did: the bare booster's flavour, whose
    # pyfunc returns the raw score (up to 0.046 from the calibrated probability, issue 15).
    from serving.score_spark import ScoresModelError, scores_model_uri

    workspace, _ = store
    booster_file = Path(
        mlflow.artifacts.download_artifacts(
            "models:/nrr-churn/1", dst_path=str(workspace.workdir / "v1")
        )
    )
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(booster_file / "extra_files" / "model.txt"))
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(booster, name="old", registered_model_name="nrr-churn")
    version = str(info.registered_model_version)
    with pytest.raises(ScoresModelError, match="is not a scores model.*train again"):
        scores_model_uri(ServingSettings(workdir=workspace.workdir), "churn", version=version)


def test_nrr_score_refuses_an_unknown_engine(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nrr.cli import build_app

    args = ["score", "--data", str(tmp_path), "--out", str(tmp_path / "s.csv"), "--engine", "hive"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())  # rich's error box
    assert "unknown engine 'hive'; expected one of: duckdb, spark" in text
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())
