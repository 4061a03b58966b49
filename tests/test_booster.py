"""ScoringModel: deterministic training, native save/load, categories, TreeSHAP contributions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap

from models.scoring.booster import ScoringModel, design_matrix, learn_levels, model_features
from tests.training_factories import make_snapshots
from training.config import BoosterConfig, CalibrationConfig, ExperimentConfig
from training.fit import fit_scoring_model

CONFIG = ExperimentConfig(
    seed=7,
    booster=BoosterConfig(num_threads=1, max_rounds=60, early_stopping_rounds=20),
    calibration=CalibrationConfig(periods=3),
)


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    frame = make_snapshots(n_accounts=120, months=20, seed=3)
    return frame[frame["labelled"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(labelled: pd.DataFrame) -> ScoringModel:
    return fit_scoring_model(labelled, target="churn", config=CONFIG)


def test_same_data_and_seed_give_identical_boosters(
    labelled: pd.DataFrame, model: ScoringModel
) -> None:
    again = fit_scoring_model(labelled, target="churn", config=CONFIG)
    assert again.booster.model_to_string() == model.booster.model_to_string()


def test_a_different_seed_gives_a_different_booster(
    labelled: pd.DataFrame, model: ScoringModel
) -> None:
    other = fit_scoring_model(
        labelled, target="churn", config=CONFIG.model_copy(update={"seed": 8})
    )
    assert other.booster.model_to_string() != model.booster.model_to_string()


def test_model_uses_registry_features_only(labelled: pd.DataFrame, model: ScoringModel) -> None:
    assert set(model.feature_names) == set(model_features(labelled))
    assert not {"labelled", "churned", "csm_owner", "renewal_at", "as_of"} & set(
        model.feature_names
    )
    assert set(model.levels) == {"plan", "segment"}


def test_contributions_sum_to_raw_score_and_match_shap(
    labelled: pd.DataFrame, model: ScoringModel
) -> None:
    rows = labelled.head(80)
    contrib = model.contributions(rows)
    assert contrib.shape == (80, len(model.feature_names) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict_raw(rows), atol=1e-9)
    explainer = shap.TreeExplainer(model.booster)
    values = explainer.shap_values(model.matrix(rows))
    np.testing.assert_allclose(contrib[:, :-1], np.asarray(values), atol=1e-6)
    np.testing.assert_allclose(
        contrib[:, -1], float(np.ravel(explainer.expected_value)[0]), atol=1e-6
    )


def test_save_and_load_round_trip_without_pickle(
    tmp_path: Path, labelled: pd.DataFrame, model: ScoringModel
) -> None:
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.txt"]
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["feature_names"] == list(model.feature_names)
    loaded = ScoringModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(labelled), model.predict_proba(labelled))
    assert loaded.metadata["target"] == "churn"


def test_load_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.txt"):
        ScoringModel.load(tmp_path)


def test_unknown_category_level_is_treated_as_missing(
    labelled: pd.DataFrame, model: ScoringModel
) -> None:
    rows = labelled.head(5).copy()
    unknown = rows.assign(plan=pd.array(["Galactic"] * 5, dtype="string"))
    missing = rows.assign(plan=pd.array([pd.NA] * 5, dtype="string"))
    np.testing.assert_array_equal(model.predict_raw(unknown), model.predict_raw(missing))
    assert np.isnan(model.matrix(unknown)["plan"]).all()


def test_levels_are_learned_not_assumed() -> None:
    frame = pd.DataFrame(
        {"plan": pd.array(["b", "a", None, "b"], dtype="string"), "arr": [1.0, 2, 3, 4]}
    )
    levels = learn_levels(frame, ["plan", "arr"])
    assert levels == {"plan": ("a", "b")}
    matrix = design_matrix(frame, features=["plan", "arr"], levels=levels)
    assert matrix["plan"].tolist()[:2] == [1.0, 0.0] and np.isnan(matrix["plan"].iloc[2])


def test_missing_feature_column_is_a_clear_error(
    labelled: pd.DataFrame, model: ScoringModel
) -> None:
    with pytest.raises(ValueError, match="mau"):
        model.predict_proba(labelled.drop(columns=["mau"]))


def test_planted_signal_is_learned(labelled: pd.DataFrame, model: ScoringModel) -> None:
    from sklearn.metrics import roc_auc_score

    later = make_snapshots(n_accounts=120, months=20, seed=99)
    later = later[later["labelled"]]
    auc = roc_auc_score(later["churned"].astype(bool), model.predict_proba(later))
    assert auc > 0.7


def test_final_booster_is_refit_on_every_row_with_the_rounds_found_on_the_hold_out(
    labelled: pd.DataFrame, model: ScoringModel
) -> None:
    # A plan launched in the latest months only exists in the calibration hold-out: the
    # refit booster must know it, the hold-out-free booster cannot.
    latest = labelled["as_of"] >= sorted(labelled["as_of"].unique())[-2]
    launched = labelled.assign(plan=labelled["plan"].astype(object).where(~latest, "Launch"))
    refit = fit_scoring_model(launched, target="churn", config=CONFIG)
    held_out = fit_scoring_model(
        launched,
        target="churn",
        config=CONFIG.model_copy(
            update={"booster": CONFIG.booster.model_copy(update={"refit_all_rows": False})}
        ),
    )
    assert "Launch" in refit.levels["plan"] and "Launch" not in held_out.levels["plan"]
    assert refit.metadata["train_rows"] == len(launched) > held_out.metadata["train_rows"]
    assert refit.booster.num_trees() == refit.metadata["best_iteration"]
    assert model.metadata["refit_all_rows"] is True
