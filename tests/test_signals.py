"""Churn-risk signals and expansion triggers, each pinned at its threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from rules_factories import default_config, fitted_normaliser, random_snapshots, snapshots

from models.rules.health import threshold_key
from models.rules.signals import evaluate_rules, rule_masks

CONFIG = default_config()
NORMALISER = fitted_normaliser(CONFIG)
POWER = NORMALISER.thresholds[threshold_key("events_per_active_user_30d", 0.95)]

# (rule, fixed context, varied feature, [(value, fires)]) - docs/DOMAIN.md thresholds.
CASES: list[tuple[str, dict[str, Any], str, list[tuple[float, bool]]]] = [
    ("usage_drop", {}, "usage_trend_14d", [(-0.41, True), (-0.40, False), (-0.39, False)]),
    (
        "champion_inactive",
        {"has_champion": 1.0},
        "champion_active_14d",
        [(0.0, True), (1.0, False)],
    ),
    (
        "champion_inactive",
        {"champion_active_14d": 0.0},
        "has_champion",
        [(0.0, False), (1.0, True)],
    ),
    ("champion_departed", {}, "champion_departed_90d", [(1.0, True), (0.0, False)]),
    (
        "sentiment_negative",
        {"sentiment_trend": -0.1},
        "sentiment_90d",
        [(-0.01, True), (0.0, False), (0.01, False)],
    ),
    (
        "sentiment_negative",
        {"sentiment_90d": -0.5},
        "sentiment_trend",
        [(-0.01, True), (0.0, False)],
    ),
    (
        "breadth_contracting",
        {},
        "core_breadth_change_30d",
        [(-0.01, True), (0.0, False), (0.01, False)],
    ),
    ("no_new_users", {}, "new_users_60d", [(0.0, True), (1.0, False)]),
    (
        "failed_payment_unresolved",
        {"invoices_failed_90d": 1.0},
        "days_overdue_max",
        [(6.0, False), (7.0, True), (8.0, True)],
    ),
    (
        "failed_payment_unresolved",
        {"days_overdue_max": 10.0},
        "invoices_failed_90d",
        [(0.0, False), (1.0, True)],
    ),
    ("nps_detractor", {}, "nps_latest", [(6.0, True), (7.0, False), (8.0, False)]),
    ("nps_drop", {}, "nps_change", [(-3.0, True), (-2.0, True), (-1.0, False)]),
    ("ticket_spike", {}, "ticket_rate_ratio", [(2.99, False), (3.0, True), (3.01, True)]),
    (
        "renewal_at_risk",
        {"health_score": 60.0},
        "days_to_renewal",
        [(-1.0, False), (0.0, True), (60.0, True), (61.0, False)],
    ),
    (
        "renewal_at_risk",
        {"days_to_renewal": 30.0},
        "health_score",
        [(69.9, True), (70.0, False), (70.1, False)],
    ),
    ("no_owner", {}, "has_owner", [(0.0, True), (1.0, False)]),
    ("near_usage_limit", {}, "usage_limit_ratio_30d", [(0.79, False), (0.8, True), (0.81, True)]),
    ("teammates_invited", {}, "invites_30d", [(2.0, False), (3.0, True), (4.0, True)]),
    ("feature_gate_hits", {}, "gate_hits_30d", [(2.0, False), (3.0, True), (4.0, True)]),
    ("usage_growth", {}, "metered_usage_yoy", [(0.19, False), (0.2, False), (0.21, True)]),
    ("second_workspace", {}, "workspaces", [(1.0, False), (2.0, True), (3.0, True)]),
    (
        "power_users",
        {},
        "events_per_active_user_30d",
        [(POWER - 0.01, False), (POWER, True), (POWER + 0.01, True)],
    ),
    (
        "renewal_upcoming",
        {},
        "days_to_renewal",
        [(-1.0, False), (0.0, True), (90.0, True), (91.0, False)],
    ),
]


def _fires(rule: str, row: dict[str, Any]) -> bool:
    health = pd.Series([row.pop("health_score", np.nan)])
    masks = rule_masks(snapshots([row]), config=CONFIG, health=health, normaliser=NORMALISER)
    return bool(masks[rule].iloc[0])


@pytest.mark.parametrize(
    ("rule", "context", "feature", "value", "fires"),
    [(r, c, f, v, e) for r, c, f, values in CASES for v, e in values],
)
def test_rule_threshold(
    rule: str, context: dict[str, Any], feature: str, value: float, fires: bool
) -> None:
    assert _fires(rule, context | {feature: value}) is fires


def test_every_configured_rule_is_pinned() -> None:
    assert {c[0] for c in CASES} == {r.name for r in CONFIG.rules}


@pytest.mark.parametrize("rule", sorted({c[0] for c in CASES}))
def test_rule_with_absent_or_nan_features_does_not_fire(rule: str) -> None:
    assert _fires(rule, {"arr": 1.0}) is False
    spec = next(r for r in CONFIG.rules if r.name == rule)
    nan_row = {c.feature: np.nan for c in spec.conditions}
    assert _fires(rule, nan_row) is False


def test_quantile_rule_without_fitted_threshold_does_not_fire() -> None:
    from models.rules.health import HealthNormaliser

    frame = snapshots([{"events_per_active_user_30d": 1e9}])
    masks = rule_masks(frame, config=CONFIG, health=None, normaliser=HealthNormaliser())
    assert not masks["power_users"].iloc[0]


def test_fired_rules_carry_kind_text_and_evidence() -> None:
    frame = snapshots([{"days_to_renewal": 45.0, "nps_latest": 9.0}, {"nps_latest": 3.0}])
    fired = evaluate_rules(
        frame, config=CONFIG, health=pd.Series([60.0, 90.0]), normaliser=NORMALISER
    )
    first = {f.name: f for f in fired[0]}
    assert set(first) == {"renewal_at_risk", "renewal_upcoming"}
    risk = first["renewal_at_risk"]
    assert risk.kind == "risk"
    assert risk.evidence == {
        "days_to_renewal": 45.0,
        "days_to_renewal_limit": ">= 0 and <= 60",
        "health_score": 60.0,
        "health_score_limit": "< 70",
    }
    assert first["renewal_upcoming"].kind == "expansion"
    assert [f.name for f in fired[1]] == ["nps_detractor"]
    assert fired[1][0].evidence == {"nps_latest": 3.0, "nps_latest_limit": "< 7"}


def test_lists_match_the_vectorised_masks() -> None:
    frame = random_snapshots(300, seed=11, config=CONFIG)
    health = pd.Series(np.linspace(0, 100, 300), index=frame.index)
    masks = rule_masks(frame, config=CONFIG, health=health, normaliser=NORMALISER)
    fired = evaluate_rules(frame, config=CONFIG, health=health, normaliser=NORMALISER)
    rebuilt = pd.DataFrame(
        [{r.name: r.name in {f.name for f in row} for r in CONFIG.rules} for row in fired],
        index=frame.index,
    )
    pd.testing.assert_frame_equal(rebuilt, masks)
    assert masks.to_numpy().any()


def test_health_of_wrong_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="rows"):
        rule_masks(
            snapshots([{"arr": 1.0}]),
            config=CONFIG,
            health=pd.Series([1.0, 2.0]),
            normaliser=NORMALISER,
        )
