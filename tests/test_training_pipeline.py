"""End to end: fast experiment on synthetic snapshots trains, logs and registers both models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.scoring.booster import ScoringModel
from models.workspace import Workspace
from tests.training_factories import make_snapshots
from training.config import ExperimentConfig, load_experiment
from training.pipeline import TrainResult, as_of_view, train
from training.registry import champion_version, load_version

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fast() -> ExperimentConfig:
    return load_experiment(REPO / "experiments" / "fast.yaml")


def with_interaction(frame: pd.DataFrame, *, seed: int = 0, share: float = 0.25) -> pd.DataFrame:
    """Extra churn where "many gate hits" XOR "Starter plan": a signal a tree finds, a line cannot.

    On the factory's own (linear) signal the logistic regression out-ranks LightGBM and would
    be served; this keeps churn a LightGBM model and expansion a logistic one, so one run
    registers both kinds.
    """
    rng = np.random.default_rng(seed)
    out = frame.copy()
    busy = (out["gate_hits_30d"] > out["gate_hits_30d"].median()).to_numpy()
    xor = busy ^ (out["plan"] == "Starter").to_numpy(dtype=bool)
    extra = out["labelled"].to_numpy(dtype=bool) & xor & (rng.random(len(out)) < share)
    out.loc[extra, "churned"] = True
    fresh = extra & out["churn_at"].isna().to_numpy()
    out.loc[fresh, "churn_at"] = out.loc[fresh, "as_of"] + pd.Timedelta(days=30)
    return out


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, fast: ExperimentConfig
) -> tuple[TrainResult, Workspace, float]:
    settings = Workspace(workdir=tmp_path_factory.mktemp("store"))
    snapshots = with_interaction(make_snapshots(n_accounts=300, months=24, seed=11))
    start = time.perf_counter()
    result = train(snapshots=snapshots, config=fast, settings=settings)
    return result, settings, time.perf_counter() - start


def test_both_models_are_registered_and_become_champion(
    trained: tuple[TrainResult, Workspace, float],
) -> None:
    result, settings, seconds = trained
    assert seconds < 60
    assert set(result.model_uris) == {"churn", "expansion"}
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    client = MlflowClient()
    for name in ("nrr-churn", "nrr-expansion"):
        assert champion_version(client, name) == "1"
        assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"


def test_registered_version_holds_native_model_and_json_sidecars(
    trained: tuple[TrainResult, Workspace, float],
) -> None:
    _, settings, _ = trained
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    local = Path(mlflow.artifacts.download_artifacts("models:/nrr-churn@champion"))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    expected = {
        "extra_files/model.txt",
        "extra_files/model.json",
        "extra_files/health_normaliser.json",
        "extra_files/fallback_calibration.json",
    }
    assert expected <= files
    assert not any(f.endswith((".pkl", ".pickle")) for f in files)
    # The LightGBM flavour reads the native model.txt itself (no second copy); the pyfunc
    # flavour is the scores model from code (tests/test_pyfunc_model.py).
    mlmodel = (local / "MLmodel").read_text()
    assert "data: extra_files/model.txt" in mlmodel and "pyfunc_code.py" in mlmodel
    assert (local / "extra_files" / "model.txt").read_text().startswith("tree")
    model = ScoringModel.load(local)
    assert model.kind == "lightgbm" and model.metadata["selection"]["recipe"] == "lightgbm"
    fallback = json.loads((local / "extra_files" / "fallback_calibration.json").read_text())
    assert fallback["decreasing"] is True
    probs = model.predict_proba(make_snapshots(n_accounts=20, months=6, seed=2))
    assert ((probs > 0) & (probs < 1)).all()


def test_a_logistic_winner_is_registered_as_json_coefficients(
    trained: tuple[TrainResult, Workspace, float],
) -> None:
    result, settings, _ = trained
    scores = result.outcomes["expansion"].pooled
    assert scores["logistic"]["roc_auc"] > scores["model"]["roc_auc"]
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    client = MlflowClient()
    version = client.get_model_version_by_alias("nrr-expansion", "champion")
    assert (
        version.tags["recipe"] == "logistic" and "beats LightGBM" in version.tags["recipe_reason"]
    )
    local = Path(mlflow.artifacts.download_artifacts("models:/nrr-expansion@champion"))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    sidecars = ("model.json", "health_normaliser.json", "fallback_calibration.json")
    # The LightGBM flavour's layout: every JSON file under extra_files/.
    assert {f"extra_files/{name}" for name in sidecars} <= files
    assert not any(f.endswith((".pkl", ".pickle", ".lgb", "model.txt")) for f in files)
    model = ScoringModel.load(local)
    assert model.kind == "logistic" and model.booster is None and model.calibrator is not None
    selection = model.metadata["selection"]
    assert selection["logistic_roc_auc"] == pytest.approx(scores["logistic"]["roc_auc"])
    assert selection["lightgbm_roc_auc"] == pytest.approx(scores["model"]["roc_auc"])
    run = client.get_run(result.run_id)
    assert run.data.tags["expansion.recipe"] == "logistic"
    assert run.data.tags["churn.recipe"] == "lightgbm"
    card = Path(
        mlflow.artifacts.download_artifacts(
            run_id=result.run_id, artifact_path="expansion/model_card.md"
        )
    ).read_text()
    assert "Recipe: logistic regression" in card
    probs = model.predict_proba(make_snapshots(n_accounts=20, months=6, seed=2))
    assert ((probs > 0) & (probs < 1)).all()


def test_run_logs_metrics_vs_baselines_and_report_artifacts(
    trained: tuple[TrainResult, Workspace, float],
) -> None:
    result, settings, _ = trained
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    run = MlflowClient().get_run(result.run_id)
    for scorer in ("model", "logistic", "rules"):
        assert 0.5 < run.data.metrics[f"churn.{scorer}.roc_auc"] <= 1.0
    assert "churn.model.fold1.brier" in run.data.metrics
    assert result.metrics["churn.model.roc_auc"] > 0.65
    artifacts = Path(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="churn")
    )
    assert (artifacts / "model_card.md").read_text().startswith("# Model card: nrr-churn")
    table = pd.read_csv(artifacts / "backtest_metrics.csv")
    assert {"pooled", "fold", "segment", "plan", "arr_band", "tenure_band"} <= set(table["scope"])
    assert (artifacts / "plots" / "shap_summary.png").stat().st_size > 0
    assert json.loads((artifacts / "promotion.json").read_text())["promoted"] is True


def test_champion_loaded_from_registry_matches_what_was_trained(
    trained: tuple[TrainResult, Workspace, float],
) -> None:
    _, settings, _ = trained
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    model = load_version(MlflowClient(), "nrr-expansion", "1")
    assert model.metadata["target"] == "expansion"
    assert "segment" in model.levels


def test_too_few_positives_registers_nothing(tmp_path: Path, fast: ExperimentConfig) -> None:
    settings = Workspace(workdir=tmp_path)
    snapshots = make_snapshots(n_accounts=25, months=18, seed=4)
    result = train(
        snapshots=snapshots,
        config=fast.model_copy(update={"targets": ["churn"]}),
        settings=settings,
    )
    assert result.model_uris == {}
    assert "too little data" in result.outcomes["churn"].message
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    assert MlflowClient().search_registered_models() == []


def test_as_of_view_hides_labels_whose_window_is_still_open() -> None:
    snapshots = make_snapshots(n_accounts=30, months=12, seed=1)
    cut = pd.Timestamp("2023-08-01")
    view = as_of_view(snapshots, as_of=cut, horizon_days=90)
    assert (view["as_of"] <= cut).all()
    labelled = view[view["labelled"]]
    assert (labelled["as_of"] + pd.Timedelta(days=90) <= cut).all()
    assert view.loc[~view["labelled"], "churned"].isna().all()
    assert np.array_equal(
        labelled["churned"].to_numpy(),
        snapshots.set_index(["account_id", "as_of"])
        .loc[list(zip(labelled["account_id"], labelled["as_of"], strict=True)), "churned"]
        .to_numpy(),
    )


def test_experiment_file_errors_name_the_wrong_key(tmp_path: Path) -> None:
    from training.config import ExperimentConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nbacktest:\n  folds: 0\n  spaceing: 3\n")
    with pytest.raises(ExperimentConfigError, match=r"backtest\.folds") as info:
        load_experiment(bad)
    assert "backtest.spaceing" in str(info.value)


def test_shipped_experiments_are_valid() -> None:
    quarterly = load_experiment(REPO / "experiments" / "quarterly.yaml")
    assert quarterly.tuning.trials > 0 and quarterly.targets == ["churn", "expansion"]
    assert load_experiment(REPO / "experiments" / "fast.yaml").tuning.trials == 0


def test_optuna_search_is_stored_logged_and_stays_in_the_space(
    tmp_path: Path, fast: ExperimentConfig
) -> None:
    import optuna

    from training.config import SearchDimension, TuningConfig
    from training.evaluate import labelled_rows
    from training.tune import tune

    space = {
        "num_leaves": SearchDimension(type="int", low=4, high=16),
        "learning_rate": SearchDimension(low=0.05, high=0.2, log=True),
    }
    config = fast.model_copy(
        update={"tuning": TuningConfig(trials=3, inner_folds=2, search_space=space)}
    )
    rows = labelled_rows(make_snapshots(n_accounts=120, months=20, seed=8))
    logged: list[tuple[int, str]] = []
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    best = tune(
        rows,
        target="churn",
        config=config,
        storage=storage,
        study_name="s",
        log_trial=lambda n, p, v, state: logged.append((n, state)),
    )
    assert 4 <= best["num_leaves"] <= 16 and 0.05 <= best["learning_rate"] <= 0.2
    assert [n for n, _ in logged] == [0, 1, 2]
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3
    assert tune(rows, target="churn", config=fast) == {}


def test_search_starts_from_the_configured_parameters(fast: ExperimentConfig) -> None:
    from training.config import BoosterConfig, SearchDimension, TuningConfig
    from training.evaluate import labelled_rows
    from training.tune import tune

    space = {
        "num_leaves": SearchDimension(type="int", low=4, high=16),
        "learning_rate": SearchDimension(low=0.05, high=0.2, log=True),
        "lambda_l2": SearchDimension(low=0.1, high=1.0),  # configured 5.0: outside, not used
    }
    params = {"num_leaves": 9, "learning_rate": 0.07, "lambda_l2": 5.0}
    config = fast.model_copy(
        update={
            "tuning": TuningConfig(trials=1, inner_folds=2, search_space=space),
            "booster": BoosterConfig(max_rounds=30, early_stopping_rounds=5, params=params),
        }
    )
    rows = labelled_rows(make_snapshots(n_accounts=120, months=20, seed=8))
    best = tune(rows, target="churn", config=config)
    # one trial: it must be the configured point (lambda_l2 sampled, it is out of range)
    assert best["num_leaves"] == 9 and best["learning_rate"] == pytest.approx(0.07)
    assert 0.1 <= best["lambda_l2"] <= 1.0


def test_a_trial_scores_the_shipped_recipe_on_rows_it_never_saw(fast: ExperimentConfig) -> None:
    # Early stopping on the scored fold would pick the best round with the answers in hand;
    # the trial's loss must be the plain out-of-sample loss of the model fit_scoring_model makes.
    from training.config import TuningConfig
    from training.evaluate import labelled_rows
    from training.fit import fit_scoring_model, target_labels
    from training.folds import time_folds
    from training.metrics import log_loss
    from training.tune import inner_fold_loss

    config = fast.model_copy(update={"tuning": TuningConfig(trials=1, inner_folds=2)})
    rows = labelled_rows(make_snapshots(n_accounts=120, months=20, seed=8))
    params = {"num_leaves": 5, "learning_rate": 0.2}
    folds = time_folds(
        rows["as_of"], rows["labelled"], horizon_days=90, folds=2, spacing=config.backtest.spacing
    )
    expected = []
    for fold in folds:
        model = fit_scoring_model(
            rows.iloc[fold.train], target="churn", config=config, overrides=params
        )
        test = rows.iloc[fold.test]
        expected.append(log_loss(target_labels(test, "churn"), model.predict_proba(test)))
    got = inner_fold_loss(rows, target="churn", config=config, overrides=params)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_a_cross_validated_complexity_is_said_tagged_and_kept_with_the_model(
    tmp_path: Path, fast: ExperimentConfig
) -> None:
    config = fast.model_copy(
        update={
            "targets": ["churn"],
            "booster": fast.booster.model_copy(update={"complexity": "cross_validated"}),
        }
    )
    settings = Workspace(workdir=tmp_path)
    snapshots = with_interaction(make_snapshots(n_accounts=300, months=24, seed=11))
    said: list[str] = []
    result = train(snapshots=snapshots, config=config, settings=settings, progress=said.append)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    client = MlflowClient()
    tag = client.get_run(result.run_id).data.tags["churn.complexity"]
    model = ScoringModel.load(Path(mlflow.artifacts.download_artifacts("models:/nrr-churn/1")))
    kept = model.metadata["complexity"]
    assert tag.startswith(f"{kept['chosen']}: lowest log loss over 5 account-grouped folds")
    assert min(kept["losses"], key=kept["losses"].get) == kept["chosen"]
    assert any(line == f"churn: booster complexity: {tag}" for line in said)
