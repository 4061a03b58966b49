"""Every fallback cause answers from the rules, says why, and never a 500."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from api_factories import make_app, model_bundle, request_account, rules_bundle, tiny_model
from fastapi.testclient import TestClient

from serving.registry_client import ModelBundle


def _score(client: TestClient, keys: dict[str, str], account: str = "acct-002") -> dict[str, Any]:
    response = client.get(f"/v1/accounts/{account}/score", headers={"X-API-Key": keys["reader"]})
    assert response.status_code == 200
    return response.json()


def test_unregistered_model_serves_rules_with_calibrated_probabilities(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, rules_bundle("model not registered: nrr-churn@champion"))
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "fallback"
        assert "not registered" in ready.json()["fallback_reason"]
        body = _score(client, keys)
        assert body["source"] == "rules" and "not registered" in body["fallback_reason"]
        assert body["churn_probability"] is not None and body["drivers"] == []
        assert body["model_versions"] == {"churn": None, "expansion": None}
        assert "nrr_fallback_scores_total" in client.get("/metrics").text


def test_fallback_churn_probability_falls_as_health_rises(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, rules_bundle())
    with TestClient(app) as client:
        items = client.get(
            "/v1/accounts?sort=health_score&page_size=50", headers={"X-API-Key": keys["reader"]}
        ).json()["items"]
    pairs = sorted((i["health_score"], i["churn_probability"]) for i in items)
    probs = [p for _, p in pairs]
    assert probs == sorted(probs, reverse=True)


def test_without_fallback_maps_probabilities_are_null_and_the_response_says_so(
    tmp_path: Path,
) -> None:
    app, keys = make_app(tmp_path, rules_bundle(with_maps=False))
    with TestClient(app) as client:
        body = _score(client, keys)
    assert body["churn_probability"] is None and body["expansion_probability"] is None
    assert "unavailable" in body["probability_note"]
    assert body["health_score"] is not None


class _BrokenModel:
    """Loads, but predicts nonsense: the golden check must refuse it."""

    feature_names = ("mau",)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), 7.0)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros((len(frame), 2))


def test_model_failing_the_golden_check_is_not_served(tmp_path: Path) -> None:
    bundle = replace(model_bundle(), churn=_BrokenModel())  # type: ignore[arg-type]
    app, keys = make_app(tmp_path, bundle)
    with TestClient(app) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "fallback" and "golden check failed" in ready["fallback_reason"]
        assert _score(client, keys)["source"] == "rules"


def test_model_needing_features_the_snapshots_lack_is_a_feature_list_mismatch(
    tmp_path: Path,
) -> None:
    bundle = replace(
        model_bundle(), expansion=tiny_model("expanded", features=("mau", "invites_30d"))
    )
    app, keys = make_app(tmp_path, bundle)
    with TestClient(app) as client:
        ready = client.get("/readyz").json()
        assert (
            "feature list mismatch" in ready["fallback_reason"]
            and "invites_30d" in ready["fallback_reason"]
        )
        assert ready["model_versions"] == {"churn": "3", "expansion": None}
        body = _score(client, keys)
    assert body["drivers"], "churn still comes from its model"
    assert (body["source"], body["churn_source"], body["expansion_source"]) == (
        "mixed",
        "model",
        "rules",
    )
    assert body["fallback_reason"].startswith("no expansion model; feature list mismatch")


def test_request_missing_a_model_feature_is_answered_by_the_model_with_a_note(
    tmp_path: Path,
) -> None:
    # Not sent = a missing value for the model, as NaN in a snapshot (tests/test_api_input.py
    # checks the probability against the booster itself).
    app, keys = make_app(tmp_path)
    account = request_account("short", mau=...)
    with TestClient(app) as client:
        response = client.post(
            "/v1/score",
            json={"accounts": [account, request_account("full")]},
            headers={"X-API-Key": keys["reader"]},
        )
    short, full = response.json()["scores"]
    assert short["source"] == "model" and short["fallback_reason"] is None
    assert short["probability_note"] == (
        "missing features (not sent or null), scored as missing values: mau"
    )
    assert full["source"] == "model" and full["probability_note"] is None


def test_null_feature_is_unknown_not_missing(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        response = client.post(
            "/v1/score",
            json={"accounts": [request_account(mau=None)]},
            headers={"X-API-Key": keys["reader"]},
        )
    assert response.json()["scores"][0]["source"] == "model"


def test_rules_that_cannot_load_make_readyz_503_and_scores_503(tmp_path: Path) -> None:
    from api_factories import api_settings, write_keys

    from serving.app import create_app

    settings = api_settings(tmp_path)
    keys = write_keys(settings.api_keys_path)

    def no_rules(path: Path | None) -> Any:
        raise ValueError("invalid rules config: bands missing")

    app = create_app(settings, bundle_loader=lambda s: model_bundle(), rules_loader=no_rules)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "bands missing" in ready.json()["fallback_reason"]
        assert client.get("/healthz").status_code == 200
        response = client.get("/v1/accounts/acct-001/score", headers={"X-API-Key": keys["reader"]})
        assert response.status_code == 503 and response.json()["error"] == "unavailable"


def test_failed_reload_keeps_the_old_models_serving(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        old = app.state.holder.current
        app.state.bundle_loader = lambda s: rules_bundle("model not registered: nrr-churn@champion")
        response = client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]}).json()
        assert response["status"] == "failed" and "not registered" in response["reason"]
        assert response["serving"]["status"] == "ready"
        assert app.state.holder.current is old
        assert _score(client, keys)["source"] == "model"


def test_reload_with_a_broken_model_fails_its_golden_check(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        broken: ModelBundle = replace(model_bundle(), churn=_BrokenModel())  # type: ignore[arg-type]
        app.state.bundle_loader = lambda s: broken
        response = client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]}).json()
    assert response["status"] == "failed" and "golden check failed" in response["reason"]


def test_posted_row_is_scored_against_the_served_population_not_itself(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, rules_bundle())
    with TestClient(app) as client:
        assert app.state.holder.current.bundle.normaliser is not None
        stored = client.get(
            "/v1/accounts/acct-002/score", headers={"X-API-Key": keys["reader"]}
        ).json()
        from api_factories import snapshot_rows

        row = snapshot_rows(12).iloc[2]
        account = request_account(
            "acct-002",
            mau=row["mau"],
            wau=row["wau"],
            usage_trend_30d=row["usage_trend_30d"],
            seat_utilisation=row["seat_utilisation"],
            segment=row["segment"],
            arr=row["arr"],
        )
        posted = client.post(
            "/v1/score", json={"accounts": [account]}, headers={"X-API-Key": keys["reader"]}
        )
    assert posted.json()["scores"][0]["health_score"] == stored["health_score"]


def _churn_only_bundle() -> ModelBundle:
    """What the registry yields for a company without expansions: no expansion model."""
    from api_factories import fallback_maps

    return ModelBundle(
        churn=tiny_model("churned"),
        fallback_maps=fallback_maps(),
        versions={"churn": "3", "expansion": None},
        fallback_reason="model not registered: nrr-expansion@champion",
    )


def _names_the_expansion_model_once(reason: str) -> None:
    parts = reason.split("; ")
    assert len(parts) == len(set(parts)), reason
    assert parts == ["no expansion model", "model not registered: nrr-expansion@champion"]


def test_churn_model_without_expansion_model_says_which_probability_is_which(
    tmp_path: Path,
) -> None:
    app, keys = make_app(tmp_path, _churn_only_bundle())
    headers = {"X-API-Key": keys["reader"]}
    with TestClient(app) as client:
        body = _score(client, keys)
        posted = client.post(
            "/v1/score", json={"accounts": [request_account()]}, headers=headers
        ).json()["scores"][0]
        items = client.get("/v1/accounts", headers=headers).json()["items"]
    for score in (body, posted):
        assert (score["source"], score["churn_source"], score["expansion_source"]) == (
            "mixed",
            "model",
            "rules",
        )
        assert score["drivers"] and score["expansion_drivers"] == []
        _names_the_expansion_model_once(score["fallback_reason"])
    assert {(i["source"], i["churn_source"], i["expansion_source"]) for i in items} == {
        ("mixed", "model", "rules")
    }


def test_batch_table_carries_each_probability_source() -> None:
    from api_factories import snapshot_rows

    from models.rules.config import load_rules_config
    from serving.scoring import score_snapshots

    table = score_snapshots(
        snapshot_rows(6), bundle=_churn_only_bundle(), rules=load_rules_config(), drivers_k=1
    )
    assert (table["source"] == "mixed").all()
    assert (table["churn_source"] == "model").all() and (table["expansion_source"] == "rules").all()
    for reason in table["fallback_reason"]:
        _names_the_expansion_model_once(reason)


def test_every_fallback_message_appears_once_when_both_models_are_missing(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, rules_bundle("registry disabled", with_maps=False))
    with TestClient(app) as client:
        body = _score(client, keys)
    assert (body["source"], body["churn_source"], body["expansion_source"]) == (
        "rules",
        "rules",
        "rules",
    )
    assert body["fallback_reason"].split("; ") == [
        "no churn model",
        "no expansion model",
        "registry disabled",
        "no fallback calibration for churn",
        "no fallback calibration for expansion",
    ]
