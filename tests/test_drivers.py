"""top_drivers: largest TreeSHAP contributions per account, with plain-language text."""

from __future__ import annotations

import pandas as pd
import pytest

from features.registry import DISPLAY, FEATURE_NAMES
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
        # one driver per signal: the contributions of a group's known members are summed
        for d in found:
            members = [model.feature_names.index(f) for f in d.features]
            assert d.feature in d.features
            assert d.contribution == pytest.approx(row[members].sum())
        assert len({DISPLAY[d.feature].group for d in found}) == len(found)


def test_direction_and_text_follow_the_contribution_sign(
    fitted: tuple[ScoringModel, pd.DataFrame],
) -> None:
    model, frame = fitted
    for found in top_drivers(model, frame.head(20), k=5):
        for d in found:
            assert d.direction == ("raises" if d.contribution > 0 else "lowers")
            assert f"{d.direction} the churn risk" in d.text


def test_text_names_the_signal_with_its_value_and_unit() -> None:
    assert describe_value("mau", 12.0) == "Monthly active users: 12 users"
    assert describe_value("has_champion", 0.0) == "No champion in place"
    assert describe_value("plan", "Pro") == "Plan: Pro"
    assert describe_value("stickiness", 0.2134) == "Weekly share of monthly active users: 21%"
    assert describe_value("usage_trend_30d", -0.456) == "Usage, last 30 days vs the 30 before: -46%"
    assert describe_value("arr", 12345.0) == "ARR: $12.3K"
    assert (
        describe_value("days_overdue_max", 12.4) == "Oldest unpaid invoice, days past due: 12 days"
    )
    assert describe_value("events_30d", 12345.0) == "Actions in the last 30 days: 12.3K actions"


def test_every_feature_has_a_display_and_groups_do_not_mix_context() -> None:
    assert set(DISPLAY) == set(FEATURE_NAMES)
    groups: dict[str, set[bool]] = {}
    for spec in DISPLAY.values():
        groups.setdefault(spec.group, set()).add(spec.context)
        assert "/" not in spec.label and "==" not in spec.label
    assert all(len(kinds) == 1 for kinds in groups.values())


def test_k_must_be_positive(fitted: tuple[ScoringModel, pd.DataFrame]) -> None:
    model, frame = fitted
    with pytest.raises(ValueError, match="k must be"):
        top_drivers(model, frame.head(2), k=0)
