"""/readyz shows the drift of the served snapshots against each served model's training data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from api_factories import MODEL_FEATURES, make_app, model_bundle, rules_bundle, snapshot_rows
from fastapi.testclient import TestClient

from models.monitoring.drift import fit_reference
from serving.registry_client import ModelBundle

ROWS = 300


def _reference() -> dict[str, Any]:
    return fit_reference(snapshot_rows(ROWS), MODEL_FEATURES).to_dict()


def _ready(tmp_path: Path, bundle: ModelBundle, served: pd.DataFrame) -> dict[str, Any]:
    served.to_parquet(tmp_path / "snapshots.parquet")
    app, _ = make_app(tmp_path, bundle)
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_readyz_flags_the_shifted_feature_of_the_served_snapshots(tmp_path: Path) -> None:
    bundle = replace(model_bundle(), drift_references={"churn": _reference()})
    served = snapshot_rows(ROWS).assign(mau=lambda f: f["mau"] * 4 + 60)
    body = _ready(tmp_path, bundle, served)
    churn = body["drift"]["churn"]
    assert churn["significant_features"] == ["mau"]
    assert churn["moderate_features"] == []
    assert churn["worst"][0]["feature"] == "mau" and churn["max_psi"] >= 0.2
    assert churn["rows"] == ROWS and churn["features"] == len(MODEL_FEATURES)
    assert churn["as_of"] == "2026-09-01"
    assert body["drift"]["expansion"] is None
    assert "expansion: model v2 was registered without a drift reference" in body["drift_reason"]


def test_readyz_drift_is_null_with_reason_without_references(tmp_path: Path) -> None:
    body = _ready(tmp_path, model_bundle(), snapshot_rows(ROWS))
    assert body["drift"] is None
    assert "without a drift reference" in body["drift_reason"]


def test_readyz_drift_is_null_when_serving_rules(tmp_path: Path) -> None:
    bundle = replace(rules_bundle(), drift_references={"churn": _reference()})
    body = _ready(tmp_path, bundle, snapshot_rows(ROWS))
    assert body["status"] == "fallback"
    assert body["drift"] is None and "no model served" in body["drift_reason"]


def test_drift_is_computed_once_per_load_not_per_request(tmp_path: Path) -> None:
    snapshot_rows(ROWS).to_parquet(tmp_path / "snapshots.parquet")
    bundle = replace(model_bundle(), drift_references={"churn": _reference()})
    app, _ = make_app(tmp_path, bundle)
    with TestClient(app) as client:
        first = client.get("/readyz").json()["drift"]
        state = app.state.holder.current
        assert client.get("/readyz").json()["drift"] == first
        assert app.state.holder.current is state and state.drift is not None
