"""The logistic recipe as a JSON model: scoring, contributions, files, baseline parity, serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.rules.config import load_rules_config
from models.scoring.booster import ScoringModel, categorical_features, model_features
from models.scoring.drivers import top_drivers
from models.scoring.linear import LinearScorer, NumericTerm
from models.workspace import Workspace
from serving.registry_client import ModelLoadError, load_bundle, load_model_folder
from serving.settings import ServingSettings
from tests.training_factories import make_snapshots
from training.baselines import LogisticBaseline
from training.config import BacktestConfig, BoosterConfig, ExperimentConfig, load_experiment
from training.evaluate import choose_recipe
from training.fit import fit_linear_model, fit_scoring_model, target_labels

REPO = Path(__file__).resolve().parents[1]
CONFIG = ExperimentConfig(seed=7, booster=BoosterConfig(num_threads=1, max_rounds=40))


def _with_gaps(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Some missing plans and segments, so the categorical reference level is exercised."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for name in ("plan", "segment"):
        out.loc[rng.random(len(out)) < 0.05, name] = pd.NA
    return out


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = _with_gaps(make_snapshots(n_accounts=160, months=20, seed=5), seed=1)
    labelled = frame[frame["labelled"]].reset_index(drop=True)
    cut = np.sort(labelled["as_of"].unique())[-4]
    train = labelled[labelled["as_of"] < cut].reset_index(drop=True)
    test = labelled[labelled["as_of"] >= cut].reset_index(drop=True)
    return train, test


@pytest.fixture(scope="module")
def baseline(split: tuple[pd.DataFrame, pd.DataFrame]) -> LogisticBaseline:
    train, _ = split
    return LogisticBaseline.fit(
        train, target_labels(train, "churn"), features=model_features(train), seed=7
    )


def _raw_from_json(meta: dict[str, object], x: np.ndarray) -> np.ndarray:
    """The log-odds recomputed from model.json's numbers alone (independent of LinearScorer)."""
    linear = meta["linear"]
    assert isinstance(linear, dict)
    raw = np.full(len(x), float(linear["intercept"]))
    for j, term in enumerate(linear["terms"]):
        col = x[:, j]
        if term["kind"] == "category":
            for code, coef in enumerate(term["coefs"]):
                raw += np.where(col == code, coef, 0.0)
            continue
        missing = np.isnan(col)
        value = np.clip(np.where(missing, term["median"], col), term["low"], term["high"])
        raw += term["coef"] * (value - term["mean"]) / term["scale"]
        if term["missing"] is not None:
            m = term["missing"]
            raw += m["coef"] * (missing - m["mean"]) / m["scale"]
    return raw


def test_raw_score_is_the_stored_coefficients_applied_to_the_design_array(
    baseline: LogisticBaseline, split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = split
    baseline.model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["kind"] == "logistic" and meta["format_version"] == 2
    assert not (tmp_path / "model.txt").exists()
    x = baseline.model.matrix_array(test)
    np.testing.assert_allclose(baseline.predict_raw(test), _raw_from_json(meta, x), atol=1e-10)
    proba = baseline.predict_proba(test)
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-_raw_from_json(meta, x))), atol=1e-12)


def test_contributions_sum_to_raw_and_are_centred_on_the_average_training_account(
    baseline: LogisticBaseline, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = split
    model = baseline.model
    contrib = model.contributions(test)
    assert contrib.shape == (len(test), len(model.feature_names) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict_raw(test), atol=1e-10)
    # Base value is the same for every row; on the training rows each feature averages zero.
    assert np.ptp(contrib[:, -1]) == 0.0
    np.testing.assert_allclose(model.contributions(train)[:, :-1].mean(axis=0), 0.0, atol=1e-9)


def test_save_and_load_round_trip_is_exact(
    split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = split
    model = fit_linear_model(train, target="churn", config=CONFIG)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]
    loaded = ScoringModel.load(tmp_path)
    assert loaded == model and loaded.kind == "logistic" and loaded.booster is None
    assert np.array_equal(loaded.predict_proba(test), model.predict_proba(test))
    assert np.array_equal(loaded.contributions(test), model.contributions(test))
    # The serving loader reads it too (and checks its features against the registry).
    assert load_model_folder(tmp_path) == model


def test_logistic_baseline_matches_the_sklearn_pipeline(
    baseline: LogisticBaseline, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = split
    features = model_features(train)
    cats = categorical_features(features)
    nums = [f for f in features if f not in cats]

    def inputs(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                n: frame[n].astype("object").where(frame[n].notna(), "__missing__").astype(str)
                if n in cats
                else frame[n].astype("float64")
                for n in features
            }
        )

    numeric = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
    )
    prep = ColumnTransformer(
        [("num", numeric, nums), ("cat", OneHotEncoder(handle_unknown="ignore"), cats)]
    )
    pipeline = Pipeline([("prep", prep), ("lr", LogisticRegression(C=1.0, max_iter=2000))])
    pipeline.fit(inputs(train), target_labels(train, "churn").astype(int))
    y = target_labels(test, "churn")
    sklearn_auc = roc_auc_score(y, pipeline.predict_proba(inputs(test))[:, 1])
    ours = roc_auc_score(y, baseline.predict_proba(test))
    assert abs(ours - sklearn_auc) < 0.01, (ours, sklearn_auc)
    assert ours > 0.7


def test_unknown_and_missing_levels_score_as_the_reference(baseline: LogisticBaseline) -> None:
    model = baseline.model
    x = model.matrix_array(make_snapshots(n_accounts=5, months=3, seed=9))
    j = model.feature_names.index("plan")
    unknown, missing = x.copy(), x.copy()
    unknown[:, j] = 99.0  # a code past the learned levels
    missing[:, j] = np.nan
    assert np.array_equal(model.predict_raw(unknown), model.predict_raw(missing))
    terms = model.linear.terms_of(missing) if model.linear is not None else None
    assert terms is not None and (terms[:, j] == 0.0).all()


def test_values_beyond_the_training_range_score_as_its_edge(baseline: LogisticBaseline) -> None:
    model = baseline.model
    x = model.matrix_array(make_snapshots(n_accounts=5, months=3, seed=9))
    j = model.feature_names.index("tickets_90d")
    edge, far = x.copy(), x.copy()
    assert model.linear is not None
    term = model.linear.terms[j]
    assert isinstance(term, NumericTerm)
    edge[:, j] = term.high
    far[:, j] = term.high * 1000 + 1
    assert np.array_equal(model.predict_raw(edge), model.predict_raw(far))


def test_linear_recipe_mirrors_the_booster_recipe(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = split
    linear = fit_linear_model(train, target="churn", config=CONFIG)
    booster = fit_scoring_model(train, target="churn", config=CONFIG)
    assert linear.metadata["recipe"] == "logistic" and booster.metadata["recipe"] == "lightgbm"
    shared = {"train_rows", "calibration_rows", "positives", "calibration_method", "label_end"}
    assert {k: linear.metadata[k] for k in shared} == {k: booster.metadata[k] for k in shared}
    assert linear.calibrator is not None and linear.feature_names == booster.feature_names
    # Refit on every row: the coefficients are the plain baseline's on all rows.
    plain = LogisticBaseline.fit(
        train, target_labels(train, "churn"), features=linear.feature_names, seed=7
    )
    assert plain.model.linear == linear.linear


def test_drivers_plots_and_card_work_for_a_linear_model(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    from training.evaluate import run_backtest
    from training.model_card import model_card
    from training.plots import shap_figures

    train, test = split
    model = fit_linear_model(train, target="churn", config=CONFIG)
    drivers = top_drivers(model, test.head(5), k=3)
    assert all(1 <= len(d) <= 3 for d in drivers)
    assert all(d.text.endswith("churn risk") for row in drivers for d in row)
    figures = shap_figures(model, test)
    assert "shap_summary" in figures and any(k.startswith("shap_dependence_") for k in figures)
    config = CONFIG.model_copy(update={"backtest": BacktestConfig(folds=1)})
    metrics = run_backtest(train, target="churn", config=config, rules=load_rules_config()).metrics
    card = model_card(model=model, metrics=metrics, decision="-", data_window=("a", "b"))
    assert "logistic regression" in card and "best iteration" not in card


def test_malformed_linear_payloads_are_clear_errors(
    baseline: LogisticBaseline, tmp_path: Path
) -> None:
    data = baseline.model.linear.to_dict() if baseline.model.linear is not None else {}
    assert LinearScorer.from_dict(data) == baseline.model.linear
    with pytest.raises(ValueError, match="malformed"):
        LinearScorer.from_dict({"kind": "logistic", "terms": [{"feature": "mau"}]})
    with pytest.raises(ValueError, match="kind"):
        LinearScorer.from_dict({**data, "kind": "tree"})
    baseline.model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["levels"]["plan"] = meta["levels"]["plan"][:-1]  # coefficients no longer line up
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="does not match its levels"):
        load_model_folder(tmp_path)


def test_a_booster_folder_without_kind_still_loads(
    split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = split
    model = fit_scoring_model(train, target="churn", config=CONFIG)
    model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["format_version"] == 1 and meta["kind"] == "lightgbm"
    del meta["kind"]  # as written before the linear recipe existed
    (tmp_path / "model.json").write_text(json.dumps(meta))
    loaded = ScoringModel.load(tmp_path)
    assert loaded.kind == "lightgbm" and loaded.linear is None
    assert np.array_equal(loaded.predict_proba(test), model.predict_proba(test))


def test_choose_recipe_serves_logistic_only_when_it_ranks_better() -> None:
    def table(model: float, logistic: float) -> pd.DataFrame:
        return pd.DataFrame({"roc_auc": [model, logistic]}, index=["model", "logistic"])

    won = choose_recipe(table(0.61, 0.66))
    assert won["recipe"] == "logistic"
    assert won["lightgbm_roc_auc"] == 0.61 and won["logistic_roc_auc"] == 0.66
    assert "0.660" in won["reason"] and "0.610" in won["reason"]
    assert choose_recipe(table(0.70, 0.70))["recipe"] == "lightgbm"
    assert choose_recipe(table(0.80, 0.66))["recipe"] == "lightgbm"


def test_pipeline_serves_the_logistic_recipe_when_it_beats_lightgbm(tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    from training.pipeline import train

    fast = load_experiment(REPO / "experiments" / "fast.yaml")
    # The factory's churn is a logistic function of a latent health score (a linear signal);
    # stumps that may only split off huge groups, for three rounds, cannot keep up.
    crippled = fast.model_copy(
        update={
            "targets": ["churn"],
            "booster": BoosterConfig(
                num_threads=1, max_rounds=3, params={"num_leaves": 2, "min_data_in_leaf": 1500}
            ),
        }
    )
    workspace = Workspace(workdir=tmp_path)
    snapshots = make_snapshots(n_accounts=220, months=22, seed=21)
    messages: list[str] = []
    result = train(
        snapshots=snapshots, config=crippled, settings=workspace, progress=messages.append
    )
    outcome = result.outcomes["churn"]
    scores = outcome.pooled
    assert scores["logistic"]["roc_auc"] > scores["model"]["roc_auc"]
    chosen = [m for m in messages if "final model" in m]
    assert len(chosen) == 1 and "logistic regression" in chosen[0], messages
    assert outcome.decision is not None and outcome.decision.promoted
    # The gate scored the registered recipe: the logistic column, not LightGBM's.
    assert outcome.decision.challenger_auc == pytest.approx(scores["logistic"]["roc_auc"])

    mlflow.set_tracking_uri(workspace.resolved_tracking_uri())
    client = MlflowClient()
    version = client.get_model_version("nrr-churn", str(outcome.version))
    assert version.tags["recipe"] == "logistic"
    assert float(version.tags["backtest.logistic_roc_auc"]) == pytest.approx(
        scores["logistic"]["roc_auc"], abs=1e-4
    )
    assert float(version.tags["backtest.lightgbm_roc_auc"]) == pytest.approx(
        scores["model"]["roc_auc"], abs=1e-4
    )
    local = Path(mlflow.artifacts.download_artifacts(f"models:/nrr-churn/{outcome.version}"))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    sidecars = ("model.json", "health_normaliser.json", "fallback_calibration.json")
    # The LightGBM flavour's layout: every JSON file under extra_files/.
    assert {f"extra_files/{name}" for name in sidecars} <= files
    assert not any(f.endswith((".pkl", ".pickle", "model.txt")) for f in files)

    bundle = load_bundle(
        ServingSettings(
            workdir=tmp_path,
            tracking_uri=workspace.resolved_tracking_uri(),
            artifacts_dir=tmp_path / "dl",
        )
    )
    assert bundle.churn is not None and bundle.churn.kind == "logistic", bundle.fallback_reason
    assert bundle.versions["churn"] == str(outcome.version)
    assert bundle.churn.metadata["selection"]["recipe"] == "logistic"
    rows = make_snapshots(n_accounts=20, months=6, seed=2)
    probs = bundle.churn.predict_proba(rows)
    assert ((probs > 0) & (probs < 1)).all()
    assert bundle.churn.linear is not None and bundle.churn.calibrator is not None
    raw = bundle.churn.linear.predict_raw(bundle.churn.matrix_array(rows))
    np.testing.assert_array_equal(probs, bundle.churn.calibrator.predict(raw))
