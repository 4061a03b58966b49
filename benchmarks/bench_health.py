"""Time the rule-based layer on 1,500 and 50,000 synthetic snapshot rows (target: health < 2 s).

Prints the median of three runs of score_health (without and with previous scores),
score_pqa, the vectorised rule masks and the per-row FiredRule lists.
Usage: .venv/bin/python benchmarks/bench_health.py [--rows N ...] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from models.rules.config import RulesConfig, load_rules_config
from models.rules.health import HealthNormaliser, score_health
from models.rules.pqa import score_pqa
from models.rules.signals import evaluate_rules, rule_masks

AS_OF = pd.Timestamp("2026-06-01")


def synthetic_snapshots(n: int, *, seed: int) -> pd.DataFrame:
    """n snapshot rows with plausible values for every feature the rules read, 3% NaN."""
    rng = np.random.default_rng(seed)
    share = {
        f: rng.beta(2, 2, n) for f in ("core_breadth_30d", "advanced_depth_30d", "seat_utilisation")
    }
    trend = {
        f: rng.normal(0, 0.3, n)
        for f in (
            "usage_trend_30d",
            "usage_trend_14d",
            "sentiment_trend",
            "core_breadth_change_30d",
        )
    }
    flags = {
        f: rng.integers(0, 2, n).astype(float)
        for f in (
            "has_champion",
            "champion_active_14d",
            "executive_active_30d",
            "champion_departed_90d",
            "has_owner",
        )
    }
    counts = {
        f: rng.poisson(lam, n).astype(float)
        for f, lam in [
            ("integrations_connected", 3),
            ("features_newly_adopted_30d", 1),
            ("active_stakeholders_90d", 3),
            ("new_users_60d", 2),
            ("invites_30d", 1),
            ("gate_hits_30d", 2),
            ("gate_hits_7d", 1),
            ("workspaces", 1),
            ("invoices_failed_90d", 0.2),
            ("admin_actions_30d", 2),
        ]
    }
    frame = pd.DataFrame(
        share
        | trend
        | flags
        | counts
        | {
            "sentiment_90d": rng.uniform(-1, 1, n),
            "ticket_rate_ratio": rng.gamma(2, 0.6, n),
            "nps_latest": rng.integers(0, 11, n).astype(float),
            "nps_change": rng.integers(-4, 5, n).astype(float),
            "days_to_renewal": rng.uniform(0, 365, n),
            "days_overdue_max": rng.exponential(5, n),
            "usage_limit_ratio_30d": rng.uniform(0, 1.3, n),
            "events_per_active_user_30d": rng.gamma(2, 20, n),
            "active_days_30d": rng.integers(0, 31, n).astype(float),
        }
    )
    frame = frame.mask(rng.random(frame.shape) < 0.03)
    frame.insert(0, "account_id", pd.array([f"acc{i}" for i in range(n)], dtype="string"))
    frame.insert(1, "as_of", AS_OF)
    frame["segment"] = pd.array(
        rng.choice(["SMB", "Mid-Market", "Enterprise", "Other"], n), dtype="string"
    )
    return frame


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(n: int, *, config: RulesConfig, repeats: int) -> None:
    """Print the timings for n rows."""
    frame = synthetic_snapshots(n, seed=0)
    normaliser = HealthNormaliser.fit(frame, config=config)
    health = score_health(frame, config=config, normaliser=normaliser)
    previous = frame[["account_id"]].assign(
        as_of=AS_OF - pd.Timedelta(days=7), health_score=health["health_score"] + 10
    )
    scores = health["health_score"]
    steps: dict[str, Callable[[], object]] = {
        "score_health": lambda: score_health(frame, config=config, normaliser=normaliser),
        "score_health + previous": lambda: score_health(
            frame, config=config, normaliser=normaliser, previous=previous
        ),
        "score_pqa": lambda: score_pqa(frame, config=config),
        "rule_masks": lambda: rule_masks(
            frame, config=config, health=scores, normaliser=normaliser
        ),
        "evaluate_rules (lists)": lambda: evaluate_rules(
            frame, config=config, health=scores, normaliser=normaliser
        ),
    }
    for name, fn in steps.items():
        print(f"{n:>7,} rows  {name:<24} median {_median_seconds(fn, repeats):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_500, 50_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = load_rules_config()
    for n in args.rows:
        bench(n, config=config, repeats=args.repeats)


if __name__ == "__main__":
    main()
