"""Promotion gate: a better challenger becomes champion, a worse one does not; manual moves."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from models.workspace import Workspace
from tests.training_factories import make_snapshots
from training.config import BoosterConfig, ExperimentConfig, PromotionConfig, load_experiment
from training.pipeline import train
from training.registry import champion_version, decide, rollback, set_champion

REPO = Path(__file__).resolve().parents[1]
GATE = PromotionConfig(min_auc_delta=0.01, brier_tolerance=0.002)


def test_no_champion_means_promotion() -> None:
    assert decide(challenger=(0.6, 0.2), champion=None, config=GATE).promoted


def test_higher_auc_and_no_worse_brier_is_promoted() -> None:
    decision = decide(
        challenger=(0.80, 0.100), champion=(0.78, 0.101), config=GATE, champion_version="3"
    )
    assert decision.promoted and decision.champion_version == "3"
    assert "0.8000" in decision.reason


def test_auc_gain_below_min_delta_is_not_promoted() -> None:
    decision = decide(challenger=(0.785, 0.09), champion=(0.78, 0.10), config=GATE)
    assert not decision.promoted and "ROC-AUC" in decision.reason


def test_better_auc_with_much_worse_brier_is_not_promoted() -> None:
    decision = decide(challenger=(0.85, 0.110), champion=(0.78, 0.100), config=GATE)
    assert not decision.promoted and "Brier" in decision.reason


def _config(*, good: bool) -> ExperimentConfig:
    fast = load_experiment(REPO / "experiments" / "fast.yaml")
    update: dict[str, object] = {"targets": ["churn"]}
    if not good:
        # Stumps that may only split off huge groups: a deliberately weak booster, which loses
        # to the logistic regression, so that recipe is the one registered and served.
        update["booster"] = BoosterConfig(
            num_threads=1, max_rounds=5, params={"num_leaves": 2, "min_data_in_leaf": 1500}
        )
    return fast.model_copy(update=update)


def test_gate_both_ways_and_manual_rollback(tmp_path: Path) -> None:
    settings = Workspace(workdir=tmp_path)
    snapshots = make_snapshots(n_accounts=220, months=22, seed=21)
    first = train(snapshots=snapshots, config=_config(good=False), settings=settings)
    second = train(snapshots=snapshots, config=_config(good=True), settings=settings)
    third = train(snapshots=snapshots, config=_config(good=True), settings=settings)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    client = MlflowClient()

    # 1: LightGBM crippled, the logistic regression is registered and (no champion) promoted.
    one = first.outcomes["churn"]
    assert one.decision is not None and one.decision.promoted
    assert client.get_model_version("nrr-churn", "1").tags["recipe"] == "logistic"
    assert one.decision.challenger_auc == pytest.approx(one.pooled["logistic"]["roc_auc"])
    # 2: a sound LightGBM beats the champion's logistic recipe, refitted on the same folds:
    # that refit is the backtest's own logistic column, number for number.
    two = second.outcomes["churn"]
    better = two.decision
    assert better is not None and better.promoted, better
    assert client.get_model_version("nrr-churn", "2").tags["recipe"] == "lightgbm"
    assert better.champion_version == "1"
    assert better.champion_auc == pytest.approx(two.pooled["logistic"]["roc_auc"], abs=1e-12)
    assert better.challenger_auc == pytest.approx(two.pooled["model"]["roc_auc"])
    # 3: the same recipe again does not beat its own refit: it stays challenger.
    worse = third.outcomes["churn"].decision
    assert worse is not None and not worse.promoted, worse
    assert worse.champion_version == "2"
    assert worse.champion_auc == pytest.approx(worse.challenger_auc)
    assert champion_version(client, "nrr-churn") == "2"
    assert str(client.get_model_version_by_alias("nrr-churn", "challenger").version) == "3"

    assert rollback(client, "nrr-churn") == "1"
    assert champion_version(client, "nrr-churn") == "1"
    set_champion(client, "nrr-churn", "3")
    assert champion_version(client, "nrr-churn") == "3"
    with pytest.raises(Exception, match="(?i)not found|does not exist|RESOURCE_DOES_NOT_EXIST"):
        set_champion(client, "nrr-churn", "99")
