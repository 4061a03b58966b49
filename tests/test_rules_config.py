"""Rules config: the default loads, and bad values get errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from rules_factories import raw_config

from models.rules.config import (
    RulesConfig,
    load_rules_config,
    segment_key,
)


def test_default_config_encodes_domain_weights_and_bands() -> None:
    config = load_rules_config()
    weights = {name: c.weight for name, c in config.health.categories.items()}
    assert weights == {"adoption": 0.35, "engagement": 0.25, "support": 0.20, "commercial": 0.20}
    assert [(b.name, b.min) for b in config.health.bands] == [
        ("Thriving", 85),
        ("Healthy", 70),
        ("At risk", 50),
        ("Critical", 25),
        ("Churning", 0),
    ]
    assert (config.health.alert.drop_points, config.health.alert.within_days) == (15, 7)
    assert config.renewals.alert_days == [90, 60, 30]


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    assert load_rules_config(_write(tmp_path, raw_config())) == load_rules_config()


def _broken(edit: str) -> dict[str, Any]:
    raw = raw_config()
    health, cats = raw["health"], raw["health"]["categories"]
    if edit == "extra_key":
        health["wieghts"] = 1
    elif edit == "unknown_feature":
        cats["adoption"]["signals"]["core_breadth_90d"] = cats["adoption"]["signals"][
            "core_breadth_30d"
        ]
    elif edit == "wrong_direction":
        cats["support"]["signals"]["ticket_rate_ratio"]["norm"] = {
            "kind": "absolute",
            "bad": 1,
            "good": 3,
        }
    elif edit == "equal_anchors":
        cats["adoption"]["signals"]["seat_utilisation"]["norm"] = {
            "kind": "absolute",
            "bad": 1,
            "good": 1,
        }
    elif edit == "negative_weight":
        cats["adoption"]["weight"] = -0.1
    elif edit == "bands_unordered":
        health["bands"] = list(reversed(health["bands"]))
    elif edit == "alias_clash":
        health["segments"]["smb"]["aliases"].append("ENT")
    elif edit == "unknown_override":
        health["segments"]["smb"]["signal_weights"]["engagement"]["nps_latest"] = 0.5
    elif edit == "unknown_play_band":
        raw["plays"]["interventions"][0]["bands"] = ["Doomed"]
    elif edit == "unknown_play_rule":
        raw["plays"]["interventions"][1]["risks_any"] = ["renewal_soon"]
    elif edit == "bad_op":
        raw["rules"][0]["conditions"][0]["op"] = "=<"
    elif edit == "two_thresholds":
        raw["rules"][0]["conditions"][0]["quantile"] = 0.5
    elif edit == "duplicate_rule":
        raw["rules"].append(raw["rules"][0])
    elif edit == "signal_twice":
        cats["support"]["signals"]["has_owner"] = cats["commercial"]["signals"]["has_owner"]
    elif edit == "alert_days":
        raw["renewals"]["alert_days"] = [90, 0]
    elif edit == "renewal_band":
        raw["renewals"]["high_risk_bands"] = ["Risky"]
    return raw


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("extra_key", "wieghts"),
        ("unknown_feature", "core_breadth_90d"),
        ("wrong_direction", "ticket_rate_ratio"),
        ("equal_anchors", "bad and good must differ"),
        ("negative_weight", "health.categories.adoption.weight"),
        ("bands_unordered", "health.bands"),
        ("alias_clash", "ENT"),
        ("unknown_override", "nps_latest"),
        ("unknown_play_band", "Doomed"),
        ("unknown_play_rule", "renewal_soon"),
        ("bad_op", "rules.0.conditions.0.op"),
        ("two_thresholds", "exactly one of value, quantile"),
        ("duplicate_rule", "unique"),
        ("renewal_band", "Risky"),
        ("signal_twice", "has_owner"),
        ("alert_days", "renewals.alert_days"),
    ],
)
def test_invalid_config_error_names_the_key(tmp_path: Path, edit: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid rules config") as info:
        load_rules_config(_write(tmp_path, _broken(edit)))
    assert message in str(info.value)


def test_config_is_frozen() -> None:
    config = load_rules_config()
    with pytest.raises(ValueError, match="frozen"):
        config.health.alert.drop_points = 5  # type: ignore[misc]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_rules_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("a", "b"), [("Mid-Market", "mid market"), ("MidMarket", "MID_MARKET"), ("SMB", " smb ")]
)
def test_segment_key_ignores_case_space_and_punctuation(a: str, b: str) -> None:
    assert segment_key(a) == segment_key(b)


def test_model_validate_accepts_the_default_dict() -> None:
    assert isinstance(RulesConfig.model_validate(raw_config()), RulesConfig)
