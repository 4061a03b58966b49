"""POST /v1/score input the models can trust: registry ranges, partial input, batch size."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from api_factories import MODEL_FEATURES, make_app, model_bundle, request_account, snapshot_rows
from fastapi.testclient import TestClient

from features.registry import BOUNDS, FEATURES
from models.scoring.booster import ScoringModel, learn_levels
from models.scoring.calibration import Calibrator
from serving.registry_client import ModelBundle
from serving.settings import ServingSettings, body_bytes_for

# The README / schema example: three features, the rest not computed by the caller.
THREE = {"mau": 14, "usage_trend_30d": -0.45, "segment": "SMB"}


def _post(tmp_path: Path, accounts: list[dict[str, Any]], bundle: ModelBundle | None = None):  # type: ignore[no-untyped-def]
    app, keys = make_app(tmp_path, bundle)
    with TestClient(app) as client:
        return client.post(
            "/v1/score", json={"accounts": accounts}, headers={"X-API-Key": keys["reader"]}
        )


def _account(features: dict[str, Any], account_id: str = "acct-x") -> dict[str, Any]:
    return {"account_id": account_id, "as_of": "2026-09-01T00:00:00Z", "features": features}


def _seat_model(seed: int) -> ScoringModel:
    """A LightGBM whose answer depends on seat_utilisation and segment, trained with some
    of both missing: a NaN takes its own branch, so filling it in would change the answer."""
    rng = np.random.default_rng(seed)
    frame = snapshot_rows(400, seed=seed)
    frame.loc[rng.random(len(frame)) < 0.3, "seat_utilisation"] = np.nan
    frame.loc[rng.random(len(frame)) < 0.2, "segment"] = None
    levels = learn_levels(frame, MODEL_FEATURES)
    probe = ScoringModel(booster=None, feature_names=MODEL_FEATURES, levels=levels)  # type: ignore[arg-type]
    seats = frame["seat_utilisation"].to_numpy(dtype=float)
    enterprise = frame["segment"].eq("Enterprise").fillna(False).to_numpy(dtype=bool)
    y = ((seats < 0.5) | (np.isnan(seats) & ~enterprise)).astype(int)
    data = lgb.Dataset(probe.matrix(frame), label=y, categorical_feature=["segment"])
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": seed}
    booster = lgb.train(params, data, num_boost_round=20)
    calibrator = Calibrator("sigmoid", {"coef": [0.8], "intercept": [-0.3]})
    return ScoringModel(booster, MODEL_FEATURES, levels, calibrator=calibrator)


def _calibrated_bundle() -> ModelBundle:
    """Models using the features a partial request leaves out, with a sigmoid calibrator
    (so the served value is not the raw sigmoid)."""
    return replace(model_bundle(), churn=_seat_model(0), expansion=_seat_model(1))


def _expected(model: Any, values: dict[str, Any]) -> float:
    """The model's probability for one row, built by hand: NaN for every feature not given."""
    row = []
    for name in model.feature_names:
        value = values.get(name)
        if name in model.levels:
            known = list(model.levels[name])
            row.append(float(known.index(value)) if value in known else math.nan)
        else:
            row.append(math.nan if value is None else float(value))
    raw = model.booster.predict(np.array([row], dtype=float), raw_score=True)[0]
    params = model.calibrator.params
    return float(1.0 / (1.0 + math.exp(-(params["coef"][0] * raw + params["intercept"][0]))))


@pytest.mark.parametrize(
    ("feature", "value", "allowed"),
    [
        ("mau", -5, "mau must be >= 0"),
        ("stickiness", 1.5, "stickiness must be in [0, 1]"),
        ("nps_latest", 11, "nps_latest must be in [0, 10]"),
        ("usage_trend_30d", -1.5, "usage_trend_30d must be >= -1"),
    ],
)
def test_out_of_range_feature_is_a_422_naming_the_field_and_range(
    tmp_path: Path, feature: str, value: float, allowed: str
) -> None:
    response = _post(tmp_path, [request_account(**{feature: value})])
    assert response.status_code == 422
    details = response.json()["details"]
    assert [d["field"] for d in details] == [f"body.accounts.0.features.{feature}"]
    assert allowed in details[0]["message"]


def test_the_observed_bad_payload_names_both_fields(tmp_path: Path) -> None:
    response = _post(tmp_path, [_account({"mau": -5, "seat_utilisation": -7, "stickiness": 7})])
    assert response.status_code == 422
    fields = {d["field"].rsplit(".", 1)[1]: d["message"] for d in response.json()["details"]}
    assert set(fields) == {"mau", "seat_utilisation", "stickiness"}
    assert "in [0, 1]" in fields["stickiness"] and ">= 0" in fields["seat_utilisation"]


def test_seat_utilisation_above_one_is_valid_over_allocation(tmp_path: Path) -> None:
    # MAU / seats exceeds 1 when more users are active than seats were bought.
    response = _post(tmp_path, [request_account(seat_utilisation=1.8)])
    assert response.status_code == 200


def test_every_numeric_feature_has_a_range_in_the_schema(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
    props = schema["components"]["schemas"]["FeatureValues"]["properties"]
    for spec in FEATURES:
        if spec.kind != "numeric":
            continue
        number = props[spec.name]["anyOf"][0]
        lo, hi = BOUNDS[spec.name]
        assert number.get("minimum") == lo and number.get("maximum") == hi, spec.name


def test_three_features_get_the_model_answer_on_nan_for_the_rest(tmp_path: Path) -> None:
    bundle = _calibrated_bundle()
    response = _post(tmp_path, [_account(THREE)], bundle)
    assert response.status_code == 200
    score = response.json()["scores"][0]
    assert score["source"] == "model" and score["fallback_reason"] is None
    assert score["churn_probability"] == pytest.approx(_expected(bundle.churn, THREE), abs=1e-12)
    # NaN is the model's missing branch, not a filled-in value.
    filled = _expected(bundle.churn, THREE | {"seat_utilisation": 0.9})
    assert abs(score["churn_probability"] - filled) > 1e-3
    assert score["expansion_probability"] == pytest.approx(
        _expected(bundle.expansion, THREE), abs=1e-12
    )
    assert score["probability_note"] == (
        "missing features (not sent or null), scored as missing values: seat_utilisation"
    )


def test_only_categorical_features_still_get_the_model(tmp_path: Path) -> None:
    bundle = _calibrated_bundle()
    response = _post(tmp_path, [_account({"segment": "Enterprise"})], bundle)
    score = response.json()["scores"][0]
    assert score["source"] == "model"
    assert score["churn_probability"] == pytest.approx(
        _expected(bundle.churn, {"segment": "Enterprise"}), abs=1e-12
    )
    assert "mau, usage_trend_30d, seat_utilisation" in score["probability_note"]


def test_unknown_category_is_scored_as_missing_and_named(tmp_path: Path) -> None:
    bundle = _calibrated_bundle()
    features = request_account()["features"] | {"segment": "Galactic"}
    response = _post(tmp_path, [_account(features)], bundle)
    score = response.json()["scores"][0]
    assert response.status_code == 200 and score["source"] == "model"
    # The same as a snapshot row holding it: the segment code is NaN (missing branch).
    assert score["churn_probability"] == pytest.approx(_expected(bundle.churn, features), abs=1e-12)
    known = _expected(bundle.churn, features | {"segment": "Enterprise"})
    assert abs(score["churn_probability"] - known) > 1e-3
    assert score["probability_note"] == (
        "categories the models were not trained on, scored as missing: segment 'Galactic'"
    )


def test_complete_request_has_no_note(tmp_path: Path) -> None:
    score = _post(tmp_path, [request_account()]).json()["scores"][0]
    assert score["source"] == "model" and score["probability_note"] is None


def _largest_account(i: int) -> dict[str, Any]:
    """Every feature at its longest: 200-character texts, 17-digit numbers in range."""
    values: dict[str, Any] = {}
    for spec in FEATURES:
        if spec.kind == "category":
            values[spec.name] = "c" * 200
        elif spec.kind == "bool":
            values[spec.name] = False
        else:
            lo, hi = spec.minimum, spec.maximum
            if lo is not None and hi is not None:
                values[spec.name] = lo + (hi - lo) * 0.12345678901234567
            elif lo is not None:
                values[spec.name] = lo + 123456.78901234567
            else:
                values[spec.name] = -123456.78901234567
    return {
        "account_id": f"{i:06d}".ljust(200, "a"),
        "as_of": "2026-09-01T00:00:00.000000+00:00",
        "csm_owner": "o" * 200,
        "renewal_at": "2026-11-15T00:00:00.000000+00:00",
        "features": values,
    }


def test_the_maximum_batch_with_every_field_fits_the_body_limit(tmp_path: Path) -> None:
    settings = ServingSettings(use_registry=False)
    assert settings.max_body_bytes == body_bytes_for(settings.max_batch_size)
    accounts = [_largest_account(i) for i in range(settings.max_batch_size)]
    body = json.dumps({"accounts": accounts, "drivers": False}, indent=2).encode()
    assert 2_000_000 < len(body) <= settings.max_body_bytes  # the old 2 MB limit refused it
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        response = client.post(
            "/v1/score",
            content=body,
            headers={"X-API-Key": keys["reader"], "Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["scores"]) == settings.max_batch_size


def test_an_explicit_body_limit_wins_and_one_more_account_is_refused(tmp_path: Path) -> None:
    assert ServingSettings(use_registry=False, max_body_bytes=20_000).max_body_bytes == 20_000
    assert ServingSettings(use_registry=False, max_batch_size=10).max_body_bytes == body_bytes_for(
        10
    )
    response = _post_many(tmp_path, 4)
    assert response.status_code == 413


def _post_many(tmp_path: Path, n: int):  # type: ignore[no-untyped-def]
    app, keys = make_app(tmp_path, max_batch_size=3)
    with TestClient(app) as client:
        return client.post(
            "/v1/score",
            json={"accounts": [request_account(f"a{i}") for i in range(n)]},
            headers={"X-API-Key": keys["reader"]},
        )
