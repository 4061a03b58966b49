"""top_drivers: largest TreeSHAP contributions per account, with plain-language text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.scoring.booster import ScoringModel
from models.scoring.drivers import describe_value, top_drivers
from tests.training_factories import make_snapshots
from training.config import BoosterConfig, ExperimentConfig
from training.fit import fit_scoring_model


@pytest.fixture(scope="module")
def fitted() -> tuple[ScoringModel, pd.DataFrame]:
    frame = make_snapshots(n_accounts=100, months=18, seed=5)
    labelled = frame[frame["labelled"]].reset_index(drop=True)
    config = ExperimentConfig(booster=BoosterConfig(num_threads=1, max_rounds=40))
    return fit_scoring_model(labelled, target="churn", config=config), labelled


def test_drivers_are_the_largest_contributions_in_order(
    fitted: tuple[ScoringModel, pd.DataFrame],
) -> None:
    model, frame = fitted
    rows = frame.head(10)
    drivers = top_drivers(model, rows, k=3)
    contrib = model.contributions(rows)[:, :-1]
    assert len(drivers) == 10
    for row, found in zip(contrib, drivers, strict=True):
        assert 1 <= len(found) <= 3
        sizes = [abs(d.contribution) for d in found]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(row).max())


def test_direction_and_text_follow_the_contribution_sign(
    fitted: tuple[ScoringModel, pd.DataFrame],
) -> None:
    model, frame = fitted
    for found in top_drivers(model, frame.head(20), k=5):
        for d in found:
            assert d.direction == ("raises" if d.contribution > 0 else "lowers")
            assert f"{d.direction} the churn risk" in d.text


def test_text_comes_from_the_registry_description_with_value_and_unit() -> None:
    assert describe_value("mau", 12.0) == "Distinct active users in the last 30 days: 12 users"
    assert describe_value("has_champion", 0.0).endswith(": no")
    assert describe_value("plan", "Pro").endswith(": Pro")
    assert describe_value("nps_latest", None).endswith(": unknown")


def test_k_must_be_positive(fitted: tuple[ScoringModel, pd.DataFrame]) -> None:
    model, frame = fitted
    with pytest.raises(ValueError, match="k must be"):
        top_drivers(model, frame.head(2), k=0)
