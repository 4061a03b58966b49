"""Array fast paths give exactly what the DataFrame paths give (rules, matrix, drivers, payloads)."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from api_factories import fallback_maps, snapshot_rows
from rules_factories import default_config, random_snapshots

from features.registry import FEATURES
from models.rules.health import HealthNormaliser, health_columns, score_health
from models.rules.pqa import pqa_columns, score_pqa
from models.rules.signals import evaluate_rules
from models.scoring.booster import ScoringModel, design_array, design_matrix, learn_levels
from models.scoring.drivers import top_drivers
from models.table import Table
from serving.registry_client import ModelBundle
from serving.routes import request_rows
from serving.schemas import ScoreRequest
from serving.scoring import score_payloads

AS_OF = pd.Timestamp("2026-09-01")
LEVELS = {"segment": ["SMB", "Mid-Market", "Enterprise"], "plan": ["Basic", "Pro", "Scale"]}


def table_of(frame: pd.DataFrame) -> Table:
    """The frame as plain arrays: floats for numbers, objects (str / NA) for the rest."""
    data: dict[str, np.ndarray] = {}
    for name in frame.columns:
        col = frame[name]
        numeric = pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        if numeric and not isinstance(col.dtype, pd.StringDtype):
            data[name] = col.to_numpy(dtype="float64", na_value=np.nan)
        else:
            data[name] = col.to_numpy(dtype=object)
    return Table(data, len(frame))


def full_snapshots(n: int, *, seed: int) -> pd.DataFrame:
    """n accounts with every registry feature, ~10% of values missing (categories too)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {
        "account_id": pd.Series([f"acct-{i:04d}" for i in range(n)], dtype="string"),
        "as_of": pd.to_datetime([AS_OF] * n),
        "csm_owner": pd.Series([None if i % 6 == 0 else f"csm{i % 4}" for i in range(n)]),
        "renewal_at": AS_OF + pd.to_timedelta(rng.integers(-20, 400, n), unit="D"),
    }
    cols["renewal_at"] = cols["renewal_at"].where(rng.random(n) > 0.2)  # month-to-month
    cols["csm_owner"] = cols["csm_owner"].astype("string")
    for spec in FEATURES:
        gone = rng.random(n) < 0.1
        if spec.kind == "category":
            levels = [*LEVELS.get(spec.name, ["a", "b"]), "never-seen"]
            values = pd.Series(rng.choice(levels, n), dtype="string")
            cols[spec.name] = values.mask(gone)
        elif spec.kind == "bool":
            cols[spec.name] = np.where(gone, np.nan, rng.integers(0, 2, n).astype(float))
        else:
            values = rng.gamma(1.5, 10.0, n) * rng.choice([-0.05, 1.0], n, p=[0.2, 0.8])
            # Within the registry range, as a request must be (POST /v1/score checks it).
            lo, hi = spec.minimum, spec.maximum
            if lo is not None and hi is not None:
                values = lo + (hi - lo) * rng.random(n)
            elif lo is not None:
                values = np.maximum(values, lo)
            cols[spec.name] = np.where(gone, np.nan, values)
    return pd.DataFrame(cols)


def trained(frame: pd.DataFrame, *, target: str, seed: int) -> ScoringModel:
    features = tuple(s.name for s in FEATURES)
    levels = {k: tuple(v) for k, v in learn_levels(frame, features).items()}
    levels = {k: tuple(x for x in v if x != "never-seen") for k, v in levels.items()}
    x = design_matrix(frame, features=features, levels=levels)
    rng = np.random.default_rng(seed)
    y = rng.random(len(x)) < 1 / (1 + np.exp(-0.05 * (np.nan_to_num(x["mau"]) - 10)))
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": seed}
    data = lgb.Dataset(x, label=y, categorical_feature=list(levels))
    booster = lgb.train(params, data, num_boost_round=15)
    return ScoringModel(booster, features, levels, metadata={"target": target})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return full_snapshots(300, seed=3)


@pytest.fixture(scope="module")
def bundle(frame: pd.DataFrame) -> ModelBundle:
    return ModelBundle(
        churn=trained(frame, target="churned", seed=1),
        expansion=trained(frame, target="expanded", seed=2),
        fallback_maps=fallback_maps(),
        versions={"churn": "3", "expansion": "2"},
    )


def assert_columns_equal(fast: dict[str, Any], slow: pd.DataFrame) -> None:
    assert list(fast) == list(slow.columns)
    for name, values in fast.items():
        got = pd.Series(list(values), dtype=slow[name].dtype, index=slow.index, name=name)
        pd.testing.assert_series_equal(got, slow[name], check_exact=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rules_on_arrays_equal_rules_on_frames(seed: int) -> None:
    config = default_config()
    snaps = random_snapshots(400, seed=seed, config=config)
    snaps.loc[snaps.index[::7], "segment"] = pd.NA
    normaliser = HealthNormaliser.fit(snaps, config=config)
    table = table_of(snaps)
    slow_health = score_health(snaps, config=config, normaliser=normaliser)
    fast_health = health_columns(table, config=config, normaliser=normaliser)
    assert_columns_equal(fast_health, slow_health)
    assert_columns_equal(pqa_columns(table, config=config), score_pqa(snaps, config=config))
    fired_slow = evaluate_rules(
        snaps, config=config, health=slow_health["health_score"], normaliser=normaliser
    )
    fired_fast = evaluate_rules(
        table, config=config, health=fast_health["health_score"], normaliser=normaliser
    )
    assert fired_fast == fired_slow
    assert any(fired_slow)


def test_health_history_in_one_table_still_scans_changes() -> None:
    # Two as_of of the same accounts: the distinct-account shortcut must not apply.
    config = default_config()
    early = random_snapshots(50, seed=4, config=config)
    late = random_snapshots(50, seed=5, config=config).assign(as_of=AS_OF + pd.Timedelta(days=30))
    snaps = pd.concat([early.assign(as_of=AS_OF), late], ignore_index=True)
    normaliser = HealthNormaliser.fit(snaps, config=config)
    slow = score_health(snaps, config=config, normaliser=normaliser)
    fast = health_columns(table_of(snaps), config=config, normaliser=normaliser)
    assert_columns_equal(fast, slow)
    assert slow["health_change"].notna().sum() == 50


def test_matrix_and_drivers_on_arrays_equal_frames(
    frame: pd.DataFrame, bundle: ModelBundle
) -> None:
    model = bundle.churn
    assert model is not None
    table = table_of(frame)
    slow_x = design_matrix(frame, features=model.feature_names, levels=model.levels)
    fast_x = design_array(table, features=model.feature_names, levels=model.levels)
    np.testing.assert_array_equal(fast_x, slow_x.to_numpy())
    np.testing.assert_array_equal(model.predict_proba(fast_x), model.predict_proba(frame))
    slow = top_drivers(model, frame, k=5)
    assert top_drivers(model, table, k=5, matrix=fast_x) == slow
    assert top_drivers(model, frame, k=5, matrix=model.matrix_array(frame)) == slow


def request_of(frame: pd.DataFrame, *, omit: dict[int, list[str]] | None = None) -> ScoreRequest:
    """The POST body a caller would send for these snapshot rows (null = unknown)."""
    accounts = []
    for i, row in enumerate(frame.itertuples(index=False)):
        rec = row._asdict()
        features: dict[str, Any] = {}
        for spec in FEATURES:
            value = rec[spec.name]
            if (omit or {}).get(i) and spec.name in (omit or {})[i]:
                continue
            if pd.isna(value):
                features[spec.name] = None
            elif spec.kind == "bool":
                features[spec.name] = bool(value)
            else:
                features[spec.name] = str(value) if spec.kind == "category" else float(value)
        accounts.append(
            {
                "account_id": rec["account_id"],
                "as_of": rec["as_of"].isoformat(),
                "csm_owner": None if pd.isna(rec["csm_owner"]) else rec["csm_owner"],
                "renewal_at": None if pd.isna(rec["renewal_at"]) else rec["renewal_at"].isoformat(),
                "features": features,
            }
        )
    return ScoreRequest.model_validate({"accounts": accounts, "drivers": True})


@pytest.mark.parametrize("with_normaliser", [False, True])
def test_request_payloads_equal_snapshot_payloads(
    frame: pd.DataFrame, bundle: ModelBundle, with_normaliser: bool
) -> None:
    config = default_config()
    if with_normaliser:
        fitted = HealthNormaliser.fit(frame, config=config).to_dict()
        bundle = ModelBundle(**{**bundle.__dict__, "normaliser": fitted})
    slow = score_payloads(frame, bundle=bundle, rules=config, drivers_k=5)
    rows, provided = request_rows(request_of(frame))
    fast = score_payloads(rows, bundle=bundle, rules=config, drivers_k=5, provided=provided)
    assert _without_notes(fast) == _without_notes(slow)
    assert {p["source"] for p in slow} == {"model"}
    # A request also says what the models scored without: its null features and the
    # categories they were not trained on ("never-seen"), as missing values.
    for i, p in enumerate(fast):
        nulls = [s.name for s in FEATURES if pd.isna(frame.loc[i, s.name])]
        note = p["probability_note"] or ""
        assert all(name in note for name in nulls) and (not nulls) == (
            "missing features" not in note
        )
        unseen = [s.name for s in FEATURES if str(frame.loc[i, s.name]) == "never-seen"]
        assert all(f"{name} 'never-seen'" in note for name in unseen)
    assert any(p["signals"] for p in slow) and any(p["drivers"] for p in slow)
    # One account alone (the latency case) gets the same answer when the anchors are fixed.
    if with_normaliser:
        one, sent = request_rows(request_of(frame.iloc[[7]]))
        alone = score_payloads(one, bundle=bundle, rules=config, drivers_k=5, provided=sent)
        # ... except the drivers' peer comparison: alone, the account has no peers to rank in
        assert _without_texts(_without_notes(alone)) == _without_texts(_without_notes([slow[7]]))


def _without_notes(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**p, "probability_note": None} for p in payloads]


def _without_texts(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("drivers", "context", "expansion_drivers", "expansion_context")
    return [{**p, **{k: [{**d, "text": None} for d in p[k]] for k in keys}} for p in payloads]


def test_request_with_omitted_features_matches_frame_with_provided_mask(
    frame: pd.DataFrame, bundle: ModelBundle
) -> None:
    config = default_config()
    head = frame.head(20).reset_index(drop=True)
    omit = {2: ["mau"], 5: ["segment", "arr"]}
    rows, provided = request_rows(request_of(head, omit=omit))
    # What was not sent is unknown to the rules as well.
    head.loc[2, "mau"] = np.nan
    head.loc[5, ["segment", "arr"]] = [pd.NA, np.nan]
    mask = pd.DataFrame({name: np.asarray(provided[name]) for name in provided.columns})
    slow = score_payloads(head, bundle=bundle, rules=config, drivers_k=3, provided=mask)
    fast = score_payloads(rows, bundle=bundle, rules=config, drivers_k=3, provided=provided)
    assert fast == slow
    # Not sent = a missing value for the model, as in a snapshot: the model still answers.
    assert slow[2]["source"] == "model" and slow[3]["source"] == "model"
    assert "mau" in slow[2]["probability_note"]


def test_request_with_history_of_one_account_matches_frame(bundle: ModelBundle) -> None:
    config = default_config()
    first = full_snapshots(6, seed=8)
    later = first.assign(as_of=AS_OF + pd.Timedelta(days=20))
    both = pd.concat([first, later], ignore_index=True)
    slow = score_payloads(both, bundle=bundle, rules=config, drivers_k=2)
    rows, provided = request_rows(request_of(both))
    fast = score_payloads(rows, bundle=bundle, rules=config, drivers_k=2, provided=provided)
    assert _without_notes(fast) == _without_notes(slow)
    assert any(p["health_change"] is not None for p in slow)


def test_a_15_point_drop_in_7_days_reaches_the_payload_as_an_alert(bundle: ModelBundle) -> None:
    from models.rules.config import load_rules_config
    from serving.scoring import score_payloads

    week_ago = snapshot_rows(6, seed=4)
    week_ago["as_of"] = week_ago["as_of"] - pd.Timedelta(days=7)
    week_ago[["mau", "wau", "seat_utilisation"]] = [50.0, 20.0, 1.0]
    week_ago["usage_trend_30d"] = 0.5
    now = week_ago.copy()
    now["as_of"] = now["as_of"] + pd.Timedelta(days=7)
    now[["mau", "wau", "seat_utilisation", "usage_trend_30d"]] = [0.0, 0.0, 0.0, -1.0]
    rows = pd.concat([week_ago, now], ignore_index=True)
    payloads = score_payloads(rows, bundle=bundle, rules=load_rules_config(), drivers_k=1)
    latest = [p for p in payloads if p["as_of"] == payloads[-1]["as_of"]]
    assert all(p["health_change"] <= -15 for p in latest)
    assert all(p["health_alert"] is True for p in latest)
    assert not any(p["health_alert"] for p in payloads[: len(week_ago)])
