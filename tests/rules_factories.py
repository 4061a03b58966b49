"""Factories for the rule-based layer's tests: configs, tiny snapshot frames, normalisers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.rules.config import AbsoluteNorm, RulesConfig, load_rules_config
from models.rules.health import HealthNormaliser

AS_OF = pd.Timestamp("2026-03-01")


def default_config() -> RulesConfig:
    """The packaged default rules."""
    return load_rules_config()


def raw_config() -> dict[str, Any]:
    """The default rules as a plain dict, for tests that break one key."""
    return default_config().model_dump(mode="json")


def config_with(**health_overrides: Any) -> RulesConfig:
    """The default rules with some `health` keys replaced."""
    raw = raw_config()
    raw["health"].update(health_overrides)
    return RulesConfig.model_validate(raw)


def signal_norms(config: RulesConfig) -> dict[str, Any]:
    """Every health signal's normalisation spec, by feature name."""
    return {n: s.norm for c in config.health.categories.values() for n, s in c.signals.items()}


def population(n: int = 200, *, seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    """A synthetic training population of the scale-dependent (percentile) features."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "integrations_connected": scale * rng.integers(0, 8, n).astype(float),
            "features_newly_adopted_30d": scale * rng.integers(0, 5, n).astype(float),
            "active_stakeholders_90d": scale * rng.integers(0, 6, n).astype(float),
            "events_per_active_user_30d": scale * rng.gamma(2.0, 20.0, n),
        }
    )


def fitted_normaliser(config: RulesConfig, *, scale: float = 1.0) -> HealthNormaliser:
    """A normaliser fitted on `population`."""
    return HealthNormaliser.fit(population(scale=scale), config=config)


def signal_row(config: RulesConfig, level: str, *, scale: float = 1.0) -> dict[str, float]:
    """One row with every health signal at its `good` or `bad` anchor (percentile: max/min)."""
    pop = population(scale=scale)
    row: dict[str, float] = {}
    for name, norm in signal_norms(config).items():
        if isinstance(norm, AbsoluteNorm):
            row[name] = norm.good if level == "good" else norm.bad
        else:
            best = pop[name].max() if norm.higher_is_better else pop[name].min()
            worst = pop[name].min() if norm.higher_is_better else pop[name].max()
            row[name] = float(best if level == "good" else worst)
    return row


def snapshots(rows: list[dict[str, Any]], *, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """A snapshot frame from row dicts; account ids a0, a1, ... unless given."""
    frame = pd.DataFrame(rows)
    if "account_id" not in frame:
        frame["account_id"] = [f"a{i}" for i in range(len(frame))]
    if "as_of" not in frame:
        frame["as_of"] = as_of
    frame["account_id"] = frame["account_id"].astype("string")
    if "segment" in frame:
        frame["segment"] = frame["segment"].astype("string")
    return frame


def random_snapshots(n: int, *, seed: int, config: RulesConfig) -> pd.DataFrame:
    """n rows with every health/PQA/rule feature drawn between the anchors, some NaN."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"account_id": [f"a{i}" for i in range(n)], "as_of": AS_OF}
    good, bad = signal_row(config, "good"), signal_row(config, "bad")
    for name in good:
        lo, hi = sorted((good[name], bad[name]))
        values = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), n)
        values[rng.random(n) < 0.05] = np.nan
        cols[name] = values
    extra = [
        "usage_trend_14d",
        "sentiment_trend",
        "core_breadth_change_30d",
        "usage_limit_ratio_30d",
    ]
    cols.update({f: rng.normal(0, 0.5, n) for f in extra})
    counts = ["new_users_60d", "invites_30d", "gate_hits_30d", "gate_hits_7d", "workspaces"]
    cols.update({f: rng.poisson(1.5, n).astype(float) for f in counts})
    cols["has_champion"] = rng.integers(0, 2, n).astype(float)
    cols["active_days_30d"] = rng.integers(0, 31, n).astype(float)
    cols["admin_actions_30d"] = rng.poisson(1.0, n).astype(float)
    cols["events_per_active_user_30d"] = rng.gamma(2.0, 20.0, n)
    cols["arr"] = rng.uniform(1e3, 1e5, n)
    cols["segment"] = pd.array(
        rng.choice(["SMB", "Mid-Market", "Enterprise", "other"], n), dtype="string"
    )
    frame = pd.DataFrame(cols)
    frame["account_id"] = frame["account_id"].astype("string")
    return frame


def write_tiny_company(folder: Path) -> pd.Timestamp:
    """Three accounts as contract files + event_map.yaml + manifest.yaml; returns an as_of."""
    from features.event_map import EVENT_MAP_FILE, dump_event_map
    from tests.snapshot_factories import EVENT_MAP, table

    ts = pd.Timestamp
    accounts = [
        {"account_id": a, "created_at": ts("2025-01-01"), "segment": s, "csm_owner": o}
        for a, s, o in [("x", "Enterprise", "kim"), ("y", "smb", None), ("z", "Mid Market", "lee")]
    ]
    subs = [
        {"account_id": a, "start_at": ts("2025-01-01"), "arr": arr, "seats": 5, "renewal_at": r}
        for a, arr, r in [
            ("x", 9000.0, ts("2026-04-15")),
            ("y", 1200.0, None),
            ("z", 3000.0, ts("2027-01-01")),
        ]
    ]
    users = [{"account_id": a, "user_id": f"{a}{i}"} for a in "xyz" for i in range(2)]
    events = [
        {
            "account_id": a,
            "user_id": f"{a}0",
            "occurred_at": ts("2026-02-01") + pd.Timedelta(days=d),
            "event": e,
        }
        for a, n in [("x", 20), ("y", 3), ("z", 10)]
        for d, e in zip(range(n), ["open", "edit", "share", "sync", "invite"] * 10, strict=False)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        "accounts": table(
            "accounts", accounts, columns=["account_id", "created_at", "segment", "csm_owner"]
        ),
        "subscriptions": table(
            "subscriptions",
            subs,
            columns=["account_id", "start_at", "end_at", "plan", "arr", "seats", "renewal_at"],
        ),
        "users": table("users", users),
        "events": table("events", events),
    }
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / EVENT_MAP_FILE).write_text(dump_event_map(EVENT_MAP))
    (folder / "manifest.yaml").write_text("extracted_at: '2026-03-10T00:00:00'\n")
    return ts("2026-03-01")
