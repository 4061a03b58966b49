"""Roadmap input (models/voice/roadmap.py): ARR-weighted drivers against the booster's own
TreeSHAP computed here, the bootstrap AUC against scikit-learn, the vanity verdict on
metrics built to be noise or signal; the /v1/themes and /v1/roadmap routes and the report
sections."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from api_factories import snapshot_rows, tiny_model, write_keys
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score

from features.registry import display
from models.voice.roadmap import (
    AuditSettings,
    arr_weighted,
    build_roadmap,
    metric_audit,
    weighted_auc,
)
from serving.security import KeyStore, read_keys
from serving.voice_report import roadmap_section, themes_section


def test_weighted_auc_is_sklearns_auc_with_and_without_weights() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=300), 1)  # rounded: many ties
    y = rng.random(300) < 1 / (1 + np.exp(-2 * x))
    w = rng.integers(0, 4, size=(3, 300)).astype(np.float32)
    got = weighted_auc(x, y, np.vstack([np.ones(300), w]))
    assert got[0] == pytest.approx(roc_auc_score(y, x))
    for i in range(3):
        assert got[i + 1] == pytest.approx(roc_auc_score(y, x, sample_weight=w[i]), abs=1e-6)


def test_arr_weighted_drivers_are_the_boosters_contributions_times_arr() -> None:
    model = tiny_model("churn")
    rows = snapshot_rows(60, seed=4)
    out = arr_weighted(model, rows, sign=1).set_index("signal")
    blockers = arr_weighted(model, rows, sign=-1).set_index("signal")
    assert model.booster is not None
    contrib = np.asarray(model.booster.predict(model.matrix(rows), pred_contrib=True))[:, :-1]
    arr = rows["arr"].to_numpy()
    groups = {display(n).group for n in model.feature_names}
    for group in groups:
        members = [k for k, n in enumerate(model.feature_names) if display(n).group == group]
        summed = contrib[:, members].sum(axis=1)
        assert out.loc[group, "mean_abs_shap_x_arr"] == pytest.approx(np.mean(np.abs(summed) * arr))
        assert out.loc[group, "mean_pushing_x_arr"] == pytest.approx(
            np.mean(np.maximum(summed, 0) * arr)
        )
        assert blockers.loc[group, "mean_pushing_x_arr"] == pytest.approx(
            np.mean(np.maximum(-summed, 0) * arr)
        )
    assert out.loc[~out["contract_fact"], "share"].sum() == pytest.approx(1.0)


def _labelled(n_accounts: int = 300, months: int = 6, seed: int = 0) -> pd.DataFrame:
    """Labelled monthly rows: mau drives churn, wau drives expansion, `workspaces` is noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for m in range(months):
        mau = rng.gamma(2.0, 10.0, n_accounts)
        wau = rng.gamma(2.0, 4.0, n_accounts)
        frames.append(
            pd.DataFrame(
                {
                    "account_id": [f"a{i}" for i in range(n_accounts)],
                    "as_of": pd.Timestamp("2026-01-01") + pd.DateOffset(months=m),
                    "arr": rng.uniform(1e3, 5e4, n_accounts),
                    "mau": mau,
                    "wau": wau,
                    "workspaces": rng.integers(1, 4, n_accounts).astype(float),
                    "labelled": True,
                    "churned": rng.random(n_accounts) < 1 / (1 + np.exp(0.15 * mau - 1)),
                    "expanded": rng.random(n_accounts) < 1 / (1 + np.exp(-0.3 * wau + 3)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_metric_audit_flags_noise_and_keeps_signals() -> None:
    audit = metric_audit(_labelled(), AuditSettings(draws=100)).set_index("metric")
    assert bool(audit.loc["workspaces", "vanity"])
    assert not audit.loc["mau", "vanity"] and not audit.loc["wau", "vanity"]
    assert audit.loc["mau", "churn_auc_high"] < 0.5  # more users, less churn
    assert audit.loc["wau", "expansion_auc_low"] > 0.5
    rows = _labelled()
    rows = rows[rows["as_of"].isin(sorted(rows["as_of"].unique())[-12:])]
    assert audit.loc["mau", "churn_auc"] == pytest.approx(
        roc_auc_score(rows["churned"], rows["mau"])
    )
    low, high = audit.loc["workspaces", ["churn_auc_low", "churn_auc_high"]]
    assert low <= 0.5 <= high


def test_roadmap_without_labels_or_models_says_what_is_missing() -> None:
    rows = snapshot_rows(20)
    roadmap = build_roadmap(rows, churn=None, expansion=None)
    assert roadmap.audit is None and roadmap.churn_drivers is None
    assert "no metric audit" in roadmap.note and "no trained model" in roadmap.note
    section = roadmap_section(roadmap.to_dict())
    assert "No drivers or audit" in section.reading


THEME = {
    "name": "sso login / login sessions",
    "mentions": 12,
    "accounts": 9,
    "arr_affected": 250_000.0,
    "trend": "up",
    "segment_most_affected": "Enterprise",
    "segment_lift": 1.8,
    "sentiment": -0.4,
    "churn_ratio": 2.0,
    "churn_ratio_low": 1.3,
    "churn_ratio_high": 3.1,
    "churn_reading": "more",
    "expand_ratio": None,
    "expand_ratio_low": None,
    "expand_ratio_high": None,
    "expand_reading": "too few",
    "quotes": ["SSO login fails <again>."],
}


def _client(report_dir: Path, keys_path: Path | None = None) -> TestClient:
    from serving.routes_voice import router

    app = FastAPI()
    app.include_router(router)
    app.state.settings = SimpleNamespace(report_dir=report_dir, auth_enabled=keys_path is not None)
    app.state.keys = KeyStore(read_keys(keys_path) if keys_path else [])
    app.state.metrics = None
    return TestClient(app)


def test_routes_serve_the_files_behind_a_reader_key(tmp_path: Path) -> None:
    roadmap = build_roadmap(_labelled(), churn=None, expansion=None, audit=AuditSettings(draws=50))
    (tmp_path / "roadmap.json").write_text(json.dumps(roadmap.to_dict(), default=str))
    keys = tmp_path / "keys.json"
    secret = write_keys(keys)["reader"]
    client = _client(tmp_path, keys)
    assert client.get("/v1/roadmap").status_code == 401
    body = client.get("/v1/roadmap", headers={"X-API-Key": secret}).json()
    assert body["audit_rows"] == roadmap.audit_rows
    assert {r["metric"] for r in body["metric_audit"]} >= {"mau", "wau", "workspaces"}
    missing = client.get("/v1/themes", headers={"X-API-Key": secret})
    assert missing.status_code == 404


def test_theme_section_reads_the_json() -> None:
    theme = THEME
    report = {"window_days": 90, "texts": 40, "correlation_rows": 100, "themes": [theme]}
    section = themes_section(report)
    assert "$250K across 9 accounts" in section.reading
    assert "Churn-correlated: sso login / login sessions" in section.reading
    assert "2.0x (1.3-3.1)" in section.table and "Enterprise (1.8x its share)" in section.table
    assert "&lt;again&gt;" in section.table and "<again>" not in section.table


def test_forecast_report_carries_both_sections_and_writes_their_files(tmp_path: Path) -> None:
    """write_report puts the voice sections into report.html and their JSON beside it,
    where GET /v1/themes and /v1/roadmap read them."""
    import dataclasses

    from test_forecasting import forecast_for, synthetic_company

    from serving.forecast_cli import write_report
    from serving.forecasting import build_nrr_tables
    from serving.voice_report import voice_sections

    subs, accounts = synthetic_company(0)
    nrr = build_nrr_tables(subs, accounts, data_end=pd.Timestamp("2025-07-01"))
    from serving.report_html import ReportInputs

    roadmap = build_roadmap(_labelled(), churn=None, expansion=None, audit=AuditSettings(draws=50))
    theme = {**THEME, "name": "invoice / billing"}
    voice = {
        "themes.json": {"window_days": 90, "texts": 3, "correlation_rows": 0, "themes": [theme]},
        "roadmap.json": json.loads(json.dumps(roadmap.to_dict())),
    }
    inputs = ReportInputs(nrr=nrr, forecast=forecast_for(draws=500))
    inputs = dataclasses.replace(inputs, voice=voice, voice_sections=tuple(voice_sections(voice)))
    out = tmp_path / "report"
    write_report(inputs, out)
    html_text = (out / "report.html").read_text()
    assert '<section id="themes">' in html_text and '<section id="roadmap">' in html_text
    assert "invoice / billing" in html_text
    served = _client(out).get("/v1/roadmap").json()
    assert served["audit_rows"] == roadmap.audit_rows
    assert _client(out).get("/v1/themes").json()["themes"][0]["name"] == "invoice / billing"
