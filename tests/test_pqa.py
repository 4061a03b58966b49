"""PQA score: docs/DOMAIN.md points mapped onto features, cap and bands."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rules_factories import default_config, snapshots

from models.rules.pqa import score_pqa

CONFIG = default_config()
IDLE = {"active_days_30d": 0.0}  # -30 points alone; used to isolate one item above the cap


def _pqa(row: dict[str, Any]) -> float:
    return float(score_pqa(snapshots([row]), config=CONFIG)["pqa_score"].iloc[0])


@pytest.mark.parametrize(
    ("feature", "below", "at", "points"),
    [
        ("core_breadth_30d", 0.0, 0.1, 20),
        ("invites_30d", 0.0, 1.0, 15),
        ("usage_limit_ratio_30d", 0.99, 1.0, 25),
        ("gate_hits_7d", 0.0, 1.0, 10),
        ("integrations_connected", 0.0, 1.0, 30),
        ("admin_actions_30d", 0.0, 1.0, 15),
    ],
)
def test_flag_items_earn_their_points_at_the_threshold(
    feature: str, below: float, at: float, points: int
) -> None:
    base = {"active_days_30d": 20.0}  # 2*20 - 10 = 30 points, room below the cap
    assert _pqa(base | {feature: below}) == 30
    assert _pqa(base | {feature: at}) == 30 + points


@pytest.mark.parametrize(("days", "points"), [(30, 60), (20, 30), (10, 0), (0, 0)])
def test_daily_activity_earns_two_per_active_and_loses_one_per_idle_day(
    days: int, points: int
) -> None:
    # 10 active days: 20 - 20 = 0; fully idle: -30, floored at 0 by the cap
    assert _pqa({"active_days_30d": float(days)}) == points


def test_idle_days_offset_other_points() -> None:
    assert _pqa(IDLE | {"integrations_connected": 2.0, "invites_30d": 1.0}) == 45 - 30


def test_score_is_capped_at_100() -> None:
    row = {
        "core_breadth_30d": 1.0,
        "active_days_30d": 30.0,
        "invites_30d": 5.0,
        "integrations_connected": 3.0,
    }
    assert _pqa(row) == 100


def test_missing_features_earn_no_points_and_no_error() -> None:
    assert _pqa({"arr": 5.0}) == 0
    assert _pqa({"active_days_30d": np.nan, "invites_30d": 1.0}) == 15


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0, "Nurture"),
        (30, "Nurture"),
        (31, "Warm"),
        (60, "Warm"),
        (61, "Sales-assist"),
        (80, "Sales-assist"),
        (81, "Sales-ready"),
        (100, "Sales-ready"),
    ],
)
def test_pqa_band_edges(score: int, band: str) -> None:
    # active_days gives 3d - 30 points: build each target score from days and flags.
    rows = {
        0: {},
        30: {"active_days_30d": 20.0},
        31: {"active_days_30d": 17.0, "gate_hits_7d": 1.0},
        60: {"active_days_30d": 30.0},
        61: {"active_days_30d": 22.0, "usage_limit_ratio_30d": 1.0},
        80: {"active_days_30d": 30.0, "core_breadth_30d": 1.0},
        81: {"active_days_30d": 27.0, "integrations_connected": 1.0},
        100: {"active_days_30d": 30.0, "integrations_connected": 1.0, "core_breadth_30d": 1.0},
    }
    out = score_pqa(snapshots([rows[score]]), config=CONFIG)
    assert out["pqa_score"].iloc[0] == score
    assert out["pqa_band"].iloc[0] == band


def test_non_numeric_feature_is_an_error() -> None:
    with pytest.raises(ValueError, match="invites_30d"):
        score_pqa(snapshots([{"invites_30d": "many"}]), config=CONFIG)
