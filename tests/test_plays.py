"""Play table: intervention level and health-gated expansion play, case by case."""

from __future__ import annotations

from typing import Any

import pytest
from rules_factories import default_config

from models.rules.plays import recommend_play
from models.rules.signals import FiredRule

CONFIG = default_config()
EARLY = "early warning (CSM outreach)"
SAVE = "active save (senior CSM, 30-day recovery plan)"
EXEC = "executive escalation"
PROACTIVE = "proactive expansion conversation"
SOFT = "soft expansion via education"


def _rule(name: str, kind: str) -> FiredRule:
    return FiredRule(name=name, kind=kind, text=name, evidence={})  # type: ignore[arg-type]


RENEWAL_RISK = [_rule("renewal_at_risk", "risk")]
TRIGGER = [_rule("teammates_invited", "expansion")]
BAND_SCORE = {
    "Thriving": 90.0,
    "Healthy": 75.0,
    "At risk": 60.0,
    "Critical": 40.0,
    "Churning": 10.0,
}

# (band, change, risks, triggers, p_churn, p_expand) -> (intervention, response, expansion play)
TABLE: list[
    tuple[
        str,
        float | None,
        list,
        list,
        float | None,
        float | None,
        str | None,
        str | None,
        str | None,
    ]
] = [
    ("Thriving", 0.0, [], TRIGGER, None, None, None, None, PROACTIVE),
    ("Thriving", -5.0, [], [], None, None, None, None, None),  # no trigger, no play
    ("Thriving", 0.0, [], [], None, 0.3, None, None, PROACTIVE),  # model says likely
    ("Thriving", 0.0, [], [], None, 0.29, None, None, None),
    ("Healthy", 2.0, [], TRIGGER, None, None, None, None, SOFT),
    ("Healthy", -3.0, [], TRIGGER, None, None, None, None, SOFT),  # falling but not At risk
    ("At risk", 1.0, [], TRIGGER, None, None, None, None, None),  # the gate
    ("At risk", 0.0, [], [], None, None, None, None, None),  # flat is not falling
    ("At risk", -1.0, [], TRIGGER, None, None, EARLY, "within 48 h", None),
    ("At risk", None, [], [], None, None, None, None, None),  # change unknown
    ("Critical", 5.0, [], TRIGGER, None, None, SAVE, "within 24 h", None),
    ("Churning", 0.0, [], [], None, None, EXEC, "immediately", None),
    ("Healthy", 0.0, RENEWAL_RISK, [], None, None, EXEC, "immediately", None),
    ("Thriving", 0.0, [], TRIGGER, 0.29, None, None, None, PROACTIVE),  # just below 0.3
    ("Thriving", 0.0, [], TRIGGER, 0.3, None, EARLY, "within 48 h", PROACTIVE),
    ("Healthy", 0.0, [], TRIGGER, 0.5, None, SAVE, "within 24 h", None),  # churn gate
    ("At risk", -2.0, [], [], 0.7, None, EXEC, "immediately", None),
    ("Critical", 0.0, [], [], 0.69, None, SAVE, "within 24 h", None),
]


@pytest.mark.parametrize(
    (
        "band",
        "change",
        "risks",
        "triggers",
        "p_churn",
        "p_expand",
        "intervention",
        "response",
        "expansion",
    ),
    TABLE,
)
def test_play_table(
    band: str,
    change: float | None,
    risks: list[FiredRule],
    triggers: list[FiredRule],
    p_churn: float | None,
    p_expand: float | None,
    intervention: str | None,
    response: str | None,
    expansion: str | None,
) -> None:
    play = recommend_play(
        health_score=BAND_SCORE[band],
        health_band=band,
        health_change=change,
        risks=risks,
        triggers=triggers,
        churn_probability=p_churn,
        expansion_probability=p_expand,
        config=CONFIG,
    )
    assert (play.intervention, play.response_time, play.expansion_play) == (
        intervention,
        response,
        expansion,
    )
    assert band in play.reason


def test_reason_names_the_risk_and_trigger() -> None:
    kwargs: dict[str, Any] = {
        "churn_probability": None,
        "expansion_probability": None,
        "config": CONFIG,
    }
    play = recommend_play(
        health_score=75.0,
        health_band="Healthy",
        health_change=0.0,
        risks=RENEWAL_RISK,
        triggers=[],
        **kwargs,
    )
    assert "renewal_at_risk" in play.reason
    play = recommend_play(
        health_score=90.0,
        health_band="Thriving",
        health_change=0.0,
        risks=[],
        triggers=TRIGGER,
        **kwargs,
    )
    assert "teammates_invited" in play.reason


def test_unknown_band_gets_no_play_and_no_error() -> None:
    play = recommend_play(
        health_score=float("nan"),
        health_band="Unknown",
        health_change=None,
        risks=[],
        triggers=TRIGGER,
        churn_probability=float("nan"),
        expansion_probability=None,
        config=CONFIG,
    )
    assert (play.intervention, play.expansion_play) == (None, None)
    assert "health unknown" in play.reason


def test_assess_accounts_combines_scores_rules_and_plays() -> None:
    import pandas as pd
    from rules_factories import fitted_normaliser, random_snapshots

    from models.rules.plays import assess_accounts

    frame = random_snapshots(40, seed=5, config=CONFIG)
    p_churn = pd.Series(0.9, index=frame.index)
    out = assess_accounts(
        frame, config=CONFIG, normaliser=fitted_normaliser(CONFIG), churn_probability=p_churn
    )
    assert out.index.equals(frame.index)
    assert (out["intervention"] == EXEC).all()  # churn probability 0.9 escalates everyone
    assert out["expansion_play"].isna().all()  # and gates expansion
    assert {"health_score", "pqa_band", "risks", "triggers", "play_reason"} <= set(out.columns)
