"""Tiny snapshots, models, key files and apps for the API and batch-scoring tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.scoring.booster import ScoringModel, learn_levels
from models.scoring.calibration import ScoreToProbability
from serving.registry_client import ModelBundle
from serving.security import append_key, new_key
from serving.settings import ServingSettings

MODEL_FEATURES = ("mau", "usage_trend_30d", "seat_utilisation", "segment")
AS_OF = pd.Timestamp("2026-09-01")


def snapshot_rows(n: int = 12, *, seed: int = 0, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """n accounts at one as_of, with a few registry features of every kind."""
    rng = np.random.default_rng(seed)
    renew_days = rng.integers(5, 400, n).astype(float)
    renew_days[::4] = np.nan  # month-to-month accounts
    return pd.DataFrame(
        {
            "account_id": [f"acct-{i:03d}" for i in range(n)],
            "as_of": pd.to_datetime([as_of] * n),
            "csm_owner": pd.Series(
                [None if i % 5 == 0 else f"csm{i % 2}" for i in range(n)], dtype="string"
            ),
            "renewal_at": as_of + pd.to_timedelta(renew_days, unit="D"),
            "mau": rng.integers(0, 50, n).astype(float),
            "wau": rng.integers(0, 20, n).astype(float),
            "usage_trend_30d": rng.normal(0, 0.4, n),
            "seat_utilisation": rng.uniform(0, 1.2, n),
            "arr": rng.uniform(1_000, 50_000, n).round(0),
            "segment": pd.Series(
                ["SMB", "Mid-Market", "Enterprise"] * (n // 3) + ["SMB"] * (n % 3), dtype="string"
            ),
        }
    )


def history(n: int = 12) -> pd.DataFrame:
    """Two as_of dates of the same accounts; the later one is what the API serves."""
    early = snapshot_rows(n, seed=1, as_of=AS_OF - pd.DateOffset(months=1))
    return pd.concat([early, snapshot_rows(n)], ignore_index=True)


def tiny_model(
    target: str, *, seed: int = 0, features: tuple[str, ...] = MODEL_FEATURES
) -> ScoringModel:
    """A 10-tree LightGBM on random rows: enough to predict and explain."""
    frame = snapshot_rows(200, seed=seed)
    for extra in set(features) - set(frame.columns):
        frame[extra] = np.random.default_rng(seed).normal(size=len(frame))
    levels = learn_levels(frame, features)
    probe = ScoringModel(booster=None, feature_names=features, levels=levels)  # type: ignore[arg-type]
    x = probe.matrix(frame)
    y = (frame["mau"] < 20).astype(int) ^ (frame["usage_trend_30d"] > 0.3).astype(int)
    data = lgb.Dataset(x, label=y, categorical_feature=[f for f in features if f in levels])
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": seed}
    booster = lgb.train(params, data, num_boost_round=10)
    return ScoringModel(
        booster=booster, feature_names=features, levels=levels, metadata={"target": target}
    )


def fallback_maps() -> dict[str, dict[str, Any]]:
    """health -> churn (decreasing) and PQA -> expansion (increasing) maps."""
    grid = np.linspace(0, 100, 11)
    churn = ScoreToProbability.fit(
        np.repeat(grid, 2), np.tile([0, 1], 11) * (np.repeat(grid, 2) < 50), decreasing=True
    )
    expansion = ScoreToProbability.fit(
        np.repeat(grid, 2), np.tile([0, 1], 11) * (np.repeat(grid, 2) > 60), decreasing=False
    )
    return {"churn": churn.to_dict(), "expansion": expansion.to_dict()}


def model_bundle(*, with_maps: bool = True) -> ModelBundle:
    return ModelBundle(
        churn=tiny_model("churned"),
        expansion=tiny_model("expanded", seed=1),
        fallback_maps=fallback_maps() if with_maps else {},
        versions={"churn": "3", "expansion": "2"},
    )


def rules_bundle(
    reason: str = "model not registered: nrr-churn@champion", *, with_maps: bool = True
) -> ModelBundle:
    return ModelBundle(fallback_maps=fallback_maps() if with_maps else {}, fallback_reason=reason)


def write_keys(path: Path) -> dict[str, str]:
    """A keys file with one reader and one admin key; returns the keys in clear."""
    keys = {}
    for role in ("reader", "admin"):
        clear, record = new_key(role)  # type: ignore[arg-type]
        append_key(path, record)
        keys[role] = clear
    return keys


def api_settings(tmp_path: Path, **overrides: Any) -> ServingSettings:
    """Settings over a snapshots file and a keys file in tmp_path."""
    snaps = tmp_path / "snapshots.parquet"
    if not snaps.exists():
        history().to_parquet(snaps)
    values: dict[str, Any] = {
        "snapshots_path": snaps,
        "api_keys_path": tmp_path / "keys.json",
        "use_registry": False,
        # In-process tests want a loaded app: start-up waits for the first load (in
        # production it answers at once and /readyz says "loading"; tests/test_startup.py).
        "startup_wait_seconds": 120.0,
    }
    values.update(overrides)
    return ServingSettings(**values)


def make_app(
    tmp_path: Path, bundle: ModelBundle | None = None, **overrides: Any
) -> tuple[Any, dict[str, str]]:
    """An app over tiny snapshots serving `bundle` (default: tiny models), and its keys."""
    from serving.app import create_app

    settings = api_settings(tmp_path, **overrides)
    keys = write_keys(settings.api_keys_path)
    served = bundle if bundle is not None else model_bundle()
    app = create_app(settings, bundle_loader=lambda _settings: served)
    return app, keys


def request_account(account_id: str = "acct-x", **features: Any) -> dict[str, Any]:
    """One POST /v1/score account with every tiny-model feature unless overridden."""
    values: dict[str, Any] = {
        "mau": 12.0,
        "usage_trend_30d": -0.4,
        "seat_utilisation": 0.5,
        "segment": "SMB",
        "arr": 12_000.0,
    }
    values.update(features)
    return {
        "account_id": account_id,
        "as_of": "2026-09-01T00:00:00",
        "renewal_at": "2026-10-15T00:00:00",
        "features": {k: v for k, v in values.items() if v is not ...},
    }


def raw_company(
    folder: Path, *, n: int = 9, end: pd.Timestamp = pd.Timestamp("2026-10-01")
) -> Path:
    """A folder of contract tables: n accounts, three of them churned before `end`."""
    from snapshot_factories import EVENT_MAP, table

    from features.event_map import dump_event_map

    start = end - pd.DateOffset(months=6)
    ids = [f"c{i:02d}" for i in range(n)]
    subs = [
        {
            "account_id": a,
            "start_at": start,
            "arr": 1000.0 * (i + 1),
            "end_at": end - pd.Timedelta(days=60) if i % 3 == 0 else None,
        }
        for i, a in enumerate(ids)
    ]
    events = [
        {
            "account_id": a,
            "user_id": f"{a}-u{j}",
            "occurred_at": end - pd.Timedelta(days=d),
            "event": ev,
        }
        for i, a in enumerate(ids)
        for j in range(1 + i % 3)
        for d, ev in ((3 + i, "open"), (20, "edit"), (45, "share"))
    ]
    frames = {
        "accounts": table("accounts", [{"account_id": a, "created_at": start} for a in ids]),
        "subscriptions": table("subscriptions", subs),
        "users": table(
            "users",
            [
                {"account_id": a, "user_id": f"{a}-u{j}", "created_at": start}
                for i, a in enumerate(ids)
                for j in range(1 + i % 3)
            ],
        ),
        "events": table("events", events),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "event_map.yaml").write_text(dump_event_map(EVENT_MAP))
    (folder / "manifest.yaml").write_text(f"extracted_at: '{end.isoformat()}'\n")
    return folder
