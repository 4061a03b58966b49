"""The API's numbers are the registered model's numbers (issue 13, part 3).

The other API tests compare the API with itself: serving `1 - p` as the churn probability
left them all green. Here a simulated company is trained and its champions registered in
a temporary MLflow store; the API serves them from that registry, and every number is
checked against the registry's own files read independently in this test: model.txt
loaded with `lightgbm.Booster`, model.json's feature order, category levels and
calibrator parameters, the input row built from the snapshot row by hand, and the
sigmoid / isotonic map applied with numpy. Then behavioural tests: on the same trained
model, worsening an account's usage, losing its champion and negative ticket sentiment
must raise its churn probability, better adoption its expansion probability; and the
renewal high-risk flag must be "strictly above" the configured churn threshold.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from api_factories import write_keys
from fastapi.testclient import TestClient

from features.registry import BY_NAME, DISPLAY
from training.demo_workspace import DemoWorkspace, prepare_workspace

ROLES = {"churn": "nrr-churn", "expansion": "nrr-expansion"}
# Calibrator.predict keeps probabilities inside [EPS, 1 - EPS] (models/scoring/calibration.py).
CALIBRATOR_EPS = 1e-6
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Registered:
    """One champion as its registry files describe it, read without the product's loader."""

    version: str
    booster: lgb.Booster
    features: list[str]
    levels: dict[str, list[str]]
    calibrator: dict[str, Any]


@dataclass(frozen=True)
class Served:
    client: TestClient
    headers: dict[str, str]
    latest: pd.DataFrame  # each account's latest snapshot row: what GET serves
    population: pd.DataFrame  # every snapshot row: reference quantiles for the changes
    models: dict[str, Registered]
    snapshots_path: Path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> DemoWorkspace:
    # Both champions of this company (220 accounts, 20 months, seed 23) are LightGBM
    # boosters with a sigmoid calibrator; a larger one may get a logistic churn champion,
    # which has no model.txt (the download says so). Under xdist both workers share one
    # folder (prepare_workspace locks it): one trains, the other reuses the champions.
    # Without xdist, this session's own folder.
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return prepare_workspace(root / "api-matches-model", accounts=220, months=20, seed=23)


def _download(workspace: DemoWorkspace, name: str, dst: Path) -> Registered:
    """The champion's files from the registry, parsed here (no ScoringModel, no Calibrator)."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    uri = workspace.settings.resolved_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(name, "champion")
    source = client.get_model_version_download_uri(name, version.version)
    local = Path(download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=uri))
    (meta_path,) = local.rglob("model.json")
    meta = json.loads(meta_path.read_text())
    booster_file = meta_path.parent / "model.txt"
    assert meta.get("kind", "lightgbm") == "lightgbm" and booster_file.is_file(), (
        f"{name} v{version.version} is not a LightGBM booster; this test reads model.txt"
    )
    return Registered(
        version=str(version.version),
        booster=lgb.Booster(model_file=str(booster_file)),
        features=list(meta["feature_names"]),
        levels={k: list(v) for k, v in meta["levels"].items()},
        calibrator=meta["calibrator"],
    )


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    last = frame[frame["as_of"] == frame["as_of"].max()]
    return last.drop_duplicates("account_id", keep="last").reset_index(drop=True)


def _app(workspace: DemoWorkspace, folder: Path, snapshots: Path, rules: Any = None) -> Any:
    from serving.app import create_app
    from serving.settings import ServingSettings

    settings = ServingSettings(
        workdir=workspace.settings.workdir,
        snapshots_path=snapshots,
        api_keys_path=folder / "keys.json",
        startup_wait_seconds=120.0,
    )
    keys = write_keys(settings.api_keys_path)  # type: ignore[arg-type]
    loader = None if rules is None else (lambda _path: rules)
    return create_app(settings, rules_loader=loader), {"X-API-Key": keys["reader"]}


@pytest.fixture(scope="module")
def served(workspace: DemoWorkspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("matches")
    snapshots = folder / "snapshots.parquet"
    workspace.snapshots.to_parquet(snapshots, index=False)
    models = {role: _download(workspace, name, folder / role) for role, name in ROLES.items()}
    app, headers = _app(workspace, folder, snapshots)
    with TestClient(app) as client:
        yield Served(
            client, headers, _latest(workspace.snapshots), workspace.snapshots, models, snapshots
        )


# --- the model's prediction, computed here -------------------------------------------


def design(rows: pd.DataFrame, model: Registered) -> np.ndarray:
    """The booster's input: features in model.json order, categories coded by stored levels."""
    columns = []
    for name in model.features:
        if name in model.levels:
            codes = {level: float(i) for i, level in enumerate(model.levels[name])}
            values = rows[name].astype(object)
            columns.append([np.nan if pd.isna(v) else codes.get(str(v), np.nan) for v in values])
        else:
            columns.append(pd.to_numeric(rows[name]).to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(columns).astype(float)


def raw_score(rows: pd.DataFrame, model: Registered) -> np.ndarray:
    return np.asarray(model.booster.predict(design(rows, model), raw_score=True), dtype=float)


def calibrated(raw: np.ndarray, model: Registered) -> np.ndarray:
    method, params = model.calibrator["method"], model.calibrator["params"]
    if method == "sigmoid":
        z = params["coef"][0] * raw + params["intercept"][0]
        p = 1.0 / (1.0 + np.exp(-z))
    else:
        assert method == "isotonic", method
        p = np.interp(raw, params["x"], params["y"])
    return np.clip(p, CALIBRATOR_EPS, 1.0 - CALIBRATOR_EPS)


def expected(rows: pd.DataFrame, served: Served, role: str) -> np.ndarray:
    return calibrated(raw_score(rows, served.models[role]), served.models[role])


# --- requests ------------------------------------------------------------------------


def _json_value(name: str, value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    kind = BY_NAME[name].kind
    if kind == "category":
        return str(value)
    if kind == "bool":
        return bool(float(value) >= 0.5)
    return float(value)


def request_account(row: pd.Series, features: list[str]) -> dict[str, Any]:
    """A POST /v1/score account carrying exactly the snapshot row's model features."""
    renewal = row["renewal_at"]
    owner = row["csm_owner"]
    return {
        "account_id": str(row["account_id"]),
        "as_of": pd.Timestamp(row["as_of"]).isoformat(),
        "renewal_at": None if pd.isna(renewal) else pd.Timestamp(renewal).isoformat(),
        "csm_owner": None if pd.isna(owner) else str(owner),
        "features": {name: _json_value(name, row[name]) for name in features},
    }


def post_scores(
    served: Served, rows: pd.DataFrame, *, drivers: bool = False
) -> list[dict[str, Any]]:
    features = sorted(
        set(served.models["churn"].features) | set(served.models["expansion"].features)
    )
    body = {
        "accounts": [request_account(row, features) for _, row in rows.iterrows()],
        "drivers": drivers,
    }
    response = served.client.post("/v1/score", json=body, headers=served.headers)
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    assert [s["account_id"] for s in scores] == [str(a) for a in rows["account_id"]]
    return scores  # type: ignore[no-any-return]


def get_scores(served: Served, rows: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for account in rows["account_id"]:
        response = served.client.get(f"/v1/accounts/{account}/score", headers=served.headers)
        assert response.status_code == 200, response.text
        out.append(response.json())
    return out


def probabilities(scores: list[dict[str, Any]], role: str) -> np.ndarray:
    return np.array([s[f"{role}_probability"] for s in scores], dtype=float)


# --- 1. the served numbers are the model's -------------------------------------------


def test_precomputed_scores_are_the_registered_models_calibrated_prediction(
    served: Served,
) -> None:
    scores = get_scores(served, served.latest)
    assert len(scores) == len(served.latest) >= 100
    versions = {role: m.version for role, m in served.models.items()}
    for s in scores:
        assert s["source"] == "model" and s["model_versions"] == versions
    for role in ROLES:
        want = expected(served.latest, served, role)
        got = probabilities(scores, role)
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE, err_msg=role)
        # Not a constant: the accounts' probabilities differ as the model's do.
        assert np.ptp(want) > 0.05


def test_posted_features_get_the_registered_models_calibrated_prediction(
    served: Served,
) -> None:
    scores = post_scores(served, served.latest)
    for role in ROLES:
        want = expected(served.latest, served, role)
        got = probabilities(scores, role)
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE, err_msg=role)
        assert all(s[f"{role}_source"] == "model" for s in scores)


def _check_drivers(
    payload_drivers: list[dict[str, Any]],
    row: pd.Series,
    contrib: np.ndarray,
    model: Registered,
    k: int,
) -> None:
    """Each driver is its signal's summed contribution; they are the k strongest signals."""
    by_group: dict[str, list[int]] = {}
    for j, name in enumerate(model.features):
        if not pd.isna(row[name]):  # a missing value is never a driver
            by_group.setdefault(DISPLAY[name].group, []).append(j)
    totals: dict[str, float] = {}
    for group, members in by_group.items():
        lead = model.features[max(members, key=lambda j: abs(contrib[j]))]
        total = float(contrib[members].sum())
        if total != 0.0 and not DISPLAY[lead].context:
            totals[group] = total
    for d in payload_drivers:
        group = DISPLAY[d["feature"]].group
        assert d["contribution"] == pytest.approx(totals[group], abs=TOLERANCE), d
        assert d["direction"] == ("raises" if totals[group] > 0 else "lowers"), d
    strongest = sorted((abs(t) for t in totals.values()), reverse=True)[:k]
    shown = [abs(d["contribution"]) for d in payload_drivers]
    np.testing.assert_allclose(shown, strongest, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("path", ["GET", "POST"])
def test_drivers_are_the_models_contributions_and_sum_to_the_raw_score(
    served: Served, path: str
) -> None:
    rows = served.latest.head(30)
    scores = get_scores(served, rows) if path == "GET" else post_scores(served, rows, drivers=True)
    k = 5  # ServingSettings.drivers_k default
    for role, key in (("churn", "drivers"), ("expansion", "expansion_drivers")):
        model = served.models[role]
        x = design(rows, model)
        contrib = np.asarray(model.booster.predict(x, pred_contrib=True), dtype=float)
        raw = np.asarray(model.booster.predict(x, raw_score=True), dtype=float)
        # every feature's contribution plus the base value (last column) is the raw score ...
        np.testing.assert_allclose(contrib.sum(axis=1), raw, rtol=0, atol=TOLERANCE)
        # ... whose calibrated value is the probability the API served
        np.testing.assert_allclose(
            calibrated(contrib.sum(axis=1), model),
            probabilities(scores, role),
            rtol=0,
            atol=TOLERANCE,
        )
        for i, (_, row) in enumerate(rows.iterrows()):
            assert len(scores[i][key]) == k, (role, row["account_id"])
            _check_drivers(scores[i][key], row, contrib[i, :-1], model, k)


# --- 2. behaviour of the trained model through POST /v1/score -------------------------


def _quantile(served: Served, name: str, q: float) -> float:
    return float(np.nanquantile(served.population[name].to_numpy(dtype=float), q))


def _change(
    served: Served,
    rows: pd.DataFrame,
    role: str,
    edit: Callable[[pd.DataFrame], pd.DataFrame],
) -> np.ndarray:
    """Per account, the served probability after `edit` minus before (same account)."""
    before = probabilities(post_scores(served, rows), role)
    after = probabilities(post_scores(served, edit(rows.copy())), role)
    return after - before


def _assert_raises(delta: np.ndarray, what: str) -> None:
    # A tree model is not monotone in every feature for every account: the direction is
    # asserted on the average (strictly) and for at least three accounts in four (>=).
    assert len(delta) >= 20, what
    assert delta.mean() > 0, f"{what}: mean change {delta.mean():+.4f}"
    share = float((delta >= 0).mean())
    assert share >= 0.75, f"{what}: only {share:.0%} of accounts did not go down"


USAGE_LOWER_IS_WORSE = (
    "events_30d",
    "active_days_30d",
    "wau",
    "mau",
    "active_users_90d",
    "stickiness",
    "events_per_active_user_30d",
    "core_breadth_30d",
    "advanced_depth_30d",
)
USAGE_TRENDS = ("usage_trend_30d", "usage_trend_14d", "active_users_trend_30d")


def test_worsening_usage_raises_churn(served: Served) -> None:
    """Domain: less activity, fewer active days, narrower core use and a falling trend mean
    more churn. Each usage signal is lowered to the population's 10th percentile (never
    raised), days since the last activity raised to the 90th, the trends to at most -50%."""

    def worse(rows: pd.DataFrame) -> pd.DataFrame:
        for name in USAGE_LOWER_IS_WORSE:
            rows[name] = np.fmin(rows[name].astype(float), _quantile(served, name, 0.1))
        idle = _quantile(served, "days_since_last_activity", 0.9)
        rows["days_since_last_activity"] = np.fmax(rows["days_since_last_activity"], idle)
        for name in USAGE_TRENDS:
            rows[name] = np.fmin(rows[name].astype(float), -0.5)
        return rows

    _assert_raises(_change(served, served.latest, "churn", worse), "worse usage")


def test_losing_the_champion_raises_churn(served: Served) -> None:
    """Domain: an account whose champion leaves (has_champion 1 -> 0, champion_departed_90d
    0 -> 1, no champion activity) is more likely to churn."""
    rows = served.latest[
        (served.latest["has_champion"] == 1) & (served.latest["champion_departed_90d"] == 0)
    ]

    def lost(rows: pd.DataFrame) -> pd.DataFrame:
        rows["has_champion"] = 0.0
        rows["champion_departed_90d"] = 1.0
        rows["champion_active_14d"] = 0.0
        return rows

    _assert_raises(_change(served, rows, "churn", lost), "champion lost")


@pytest.mark.xfail(
    strict=True,
    reason="the demo's trained churn model does not encode it: on this company (220 "
    "accounts, seed 23) negative ticket sentiment LOWERS the mean churn probability "
    "(-0.0005 over 148 accounts with tickets, 32 lower); sentiment_90d's partial "
    "dependence falls from 0.062 at +0.6 to 0.057 at -1.0. Strict: once the model "
    "learns the domain direction this passes, fails as XPASS, and the mark goes",
)
def test_negative_ticket_sentiment_raises_churn(served: Served) -> None:
    """Domain: negative support tickets (sentiment of the last 90 days at most -0.6 on
    [-1, 1], falling by at least 1.0) mean more churn, for accounts that have tickets."""
    rows = served.latest[served.latest["sentiment_90d"].notna()]

    def negative(rows: pd.DataFrame) -> pd.DataFrame:
        rows["sentiment_90d"] = np.fmin(rows["sentiment_90d"].astype(float), -0.6)
        rows["sentiment_trend"] = np.fmin(rows["sentiment_trend"].astype(float), -1.0)
        return rows

    _assert_raises(_change(served, rows, "churn", negative), "negative sentiment")


ADOPTION = ("core_breadth_30d", "advanced_depth_30d", "seat_utilisation", "licence_utilisation")


def test_better_adoption_raises_expansion(served: Served) -> None:
    """Domain: an account using more of the product and of its licences (core breadth,
    advanced depth, seat and licence utilisation raised to the population's 90th
    percentile, never lowered) is more likely to expand."""

    def better(rows: pd.DataFrame) -> pd.DataFrame:
        for name in ADOPTION:
            rows[name] = np.fmax(rows[name].astype(float), _quantile(served, name, 0.9))
        return rows

    _assert_raises(_change(served, served.latest, "expansion", better), "better adoption")


# --- 3. the renewal high-risk boundary on the model's own probability ------------------


def test_high_risk_is_churn_probability_strictly_above_the_threshold(
    served: Served, workspace: DemoWorkspace, tmp_path: Path
) -> None:
    """With the threshold set to one account's served churn probability, that account is
    not high risk by probability (at the threshold is not above it); accounts above are."""
    from models.rules.config import load_rules_config

    rules = load_rules_config()
    bands = set(rules.renewals.high_risk_bands)
    scores = get_scores(served, served.latest)
    calm = sorted(
        (s["churn_probability"], s["account_id"]) for s in scores if s["health_band"] not in bands
    )
    assert len(calm) >= 10
    threshold, at_threshold = calm[len(calm) // 2]
    assert math.isfinite(threshold) and any(p > threshold for p, _ in calm)
    renewals = rules.renewals.model_copy(update={"churn_probability_high": threshold})
    app, headers = _app(
        workspace, tmp_path, served.snapshots_path, rules.model_copy(update={"renewals": renewals})
    )
    with TestClient(app) as client:
        flagged = {}
        for account in served.latest["account_id"]:
            body = client.get(f"/v1/accounts/{account}/score", headers=headers).json()
            assert body["churn_probability"] is not None
            want = body["health_band"] in bands or body["churn_probability"] > threshold
            assert body["renewal"]["high_risk"] is want, (account, body["churn_probability"])
            flagged[str(account)] = body["renewal"]["high_risk"]
    assert flagged[str(at_threshold)] is False
    assert sum(flagged.values()) > sum(s["health_band"] in bands for s in scores)


# --- 3. a POSTed served account reads as its precomputed score (issue 14, parts 1-2) -----


def test_posted_served_accounts_get_their_history_and_the_books_peers(served: Served) -> None:
    """POST today's full feature rows of served accounts: health_change (the At-risk play's
    input), the play and every driver text, with its "90 days ago" and book percentile,
    equal the precomputed scores', which come from the snapshots file by another path."""
    from serving.routes import _CATEGORY, _NUMERIC

    rows = served.latest.head(60)
    sendable = [c for c in (*_NUMERIC, *_CATEGORY) if c in rows.columns]
    accounts: list[dict[str, Any]] = []
    for _, row in rows.iterrows():
        account = request_account(row, [])
        account["features"] = {c: _json_value(c, row[c]) for c in sendable if not pd.isna(row[c])}
        accounts.append(account)
    body = {"accounts": accounts, "drivers": True}
    response = served.client.post("/v1/score", json=body, headers=served.headers)
    assert response.status_code == 200, response.text
    posted = response.json()["scores"]
    stored = get_scores(served, rows)
    changed = [p["health_change"] for p in posted]
    assert sum(c is not None for c in changed) > len(rows) / 2
    assert changed == [s["health_change"] for s in stored]
    assert [p["play"] for p in posted] == [s["play"] for s in stored]
    texts = [[d["text"] for d in p["drivers"]] for p in posted]
    assert texts == [[d["text"] for d in s["drivers"]] for s in stored]
    assert sum(any("days ago" in t for t in ts) for ts in texts) > len(rows) / 2

    # An account the book does not hold gets no history, and still its play and drivers.
    stranger = dict(accounts[0], account_id="not-in-the-book")
    response = served.client.post(
        "/v1/score", json={"accounts": [stranger], "drivers": True}, headers=served.headers
    )
    assert response.status_code == 200, response.text
    alone = response.json()["scores"][0]
    assert alone["health_change"] is None
    assert alone["drivers"] and not any("days ago" in d["text"] for d in alone["drivers"])
