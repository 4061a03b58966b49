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


CHECK = "health check (CSM reviews the detractors)"
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
    ("At risk", 1.0, [], TRIGGER, None, None, CHECK, "within 1 week", None),  # the gate
    ("At risk", 0.0, [], [], None, None, CHECK, "within 1 week", None),  # flat: not falling
    ("At risk", -1.0, [], TRIGGER, None, None, EARLY, "within 48 h", None),
    ("At risk", None, [], [], None, None, CHECK, "within 1 week", None),  # change unknown
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


def _api_play(payload: dict[str, Any]) -> tuple[Any, ...]:
    play = payload["play"]
    return (play["intervention"], play["response_time"], play["expansion_play"], play["reason"])


def _cli_play(row: Any) -> tuple[Any, ...]:
    import pandas as pd

    values = (row["intervention"], row["response_time"], row["expansion_play"], row["play_reason"])
    return tuple(None if pd.isna(v) else v for v in values)


def test_nrr_health_and_the_api_give_the_same_play_for_the_same_account(tmp_path: Any) -> None:
    import pandas as pd
    from api_factories import make_app
    from fastapi.testclient import TestClient
    from rules_factories import write_tiny_company
    from typer.testing import CliRunner

    from models.cli import _snapshots_at
    from nrr.cli import build_app
    from serving.registry_client import ModelBundle

    data = tmp_path / "data"
    as_of = write_tiny_company(data)
    out = tmp_path / "health.parquet"
    result = CliRunner().invoke(
        build_app(),
        ["health", "--data", str(data), "--as-of", str(as_of.date()), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    cli = pd.read_parquet(out).set_index("account_id")
    # The API serves the same snapshot; no model, so neither side has probabilities and
    # both anchor the health percentiles on the accounts scored.
    snaps, _, _ = _snapshots_at(data, as_of)
    served = tmp_path / "api"
    served.mkdir()
    snaps.to_parquet(served / "snapshots.parquet")
    app, keys = make_app(served, ModelBundle())
    with TestClient(app) as client:
        for account in cli.index:
            response = client.get(
                f"/v1/accounts/{account}/score", headers={"X-API-Key": keys["reader"]}
            )
            assert response.status_code == 200
            assert _api_play(response.json()) == _cli_play(cli.loc[account]), account


def test_api_scoring_and_assess_accounts_give_the_same_play_given_the_probabilities() -> None:
    import numpy as np
    import pandas as pd
    from api_factories import fallback_maps
    from rules_factories import fitted_normaliser, random_snapshots

    from models.rules.plays import assess_accounts
    from serving.registry_client import ModelBundle
    from serving.scoring import score_payloads

    frame = random_snapshots(60, seed=11, config=CONFIG)
    # one account with nothing known: health and band unknown on both paths
    blank = {c: np.nan for c in frame.columns if c not in ("account_id", "as_of", "segment")}
    frame = pd.concat(
        [frame, pd.DataFrame([{**blank, "account_id": "blank", "as_of": frame["as_of"].iloc[0]}])],
        ignore_index=True,
    )
    frame["account_id"] = frame["account_id"].astype("string")
    normaliser = fitted_normaliser(CONFIG)
    bundle = ModelBundle(fallback_maps=fallback_maps(), normaliser=normaliser.to_dict())
    payloads = score_payloads(frame, bundle=bundle, rules=CONFIG, drivers_k=0)
    p_churn = pd.Series([p["churn_probability"] for p in payloads], dtype="float64")
    p_expand = pd.Series([p["expansion_probability"] for p in payloads], dtype="float64")
    cli = assess_accounts(
        frame,
        config=CONFIG,
        normaliser=normaliser,
        churn_probability=p_churn,
        expansion_probability=p_expand,
    )
    api_plays = [_api_play(p) for p in payloads]
    cli_plays = [_cli_play(row) for _, row in cli.iterrows()]
    assert api_plays == cli_plays
    assert len({p[0] for p in api_plays}) >= 3, "the sample should reach several interventions"
    assert "health unknown" in api_plays[-1][3] and "Unknown" in api_plays[-1][3]
