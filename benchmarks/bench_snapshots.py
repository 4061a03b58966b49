"""Time the full snapshot build against a hand-written reference query on the same spine.

Builds 24 monthly snapshots (the last 24 month starts of the data) of a company and prints
wall time and peak memory of (a) the full feature set plus labels (`build_snapshots`) and
(b) one hand-written DuckDB query computing only WAU, MAU, 30-day core breadth and the
30-day usage trend. Goal: (a) <= 4x (b) in wall time, peak memory < 2 GB. Each side runs
in its own child process, so each peak resident memory is its own (DuckDB included).

Usage:
  .venv/bin/python benchmarks/bench_snapshots.py --data DIR
  .venv/bin/python benchmarks/bench_snapshots.py --data DIR --simulate    # `nrr simulate`
  .venv/bin/python benchmarks/bench_snapshots.py --data DIR --synthetic   # no simulator
--simulate / --synthetic write a 5,000-account company into DIR first when DIR has no
accounts table yet.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.config import SnapshotConfig
from features.load import load_source
from features.snapshots import build_snapshots
from features.source import DataSource
from features.spine import build_spine

MONTHS = 24
SYNTHETIC_EVENT_MAP = """\
core_features: [report_created, dashboard_viewed, record_imported, search_run]
advanced_features: [workflow_automated, api_call]
invite_events: [teammate_invited]
gate_events: [feature_gate_hit]
metered_events: [api_call]
"""
NOW = pd.Timestamp("2100-01-01")


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_spine(source: DataSource) -> pd.DataFrame:
    """Accounts with ARR > 0 at the last MONTHS month starts of the data."""
    end = source.data_end
    start = (end - pd.DateOffset(months=MONTHS)).normalize()
    spine = build_spine(source, start=start, end=end, freq="month")
    grid = sorted(spine["as_of"].unique())[-MONTHS:]
    return spine[spine["as_of"].isin(grid)].reset_index(drop=True)


def reference_query(source: DataSource, spine: pd.DataFrame) -> pd.DataFrame:
    """WAU, MAU, 30-day core breadth and usage trend: one direct query over the events."""
    core = list(source.event_map.core_features) or ["<none>"]
    source.con.register("bench_spine", spine)
    source.con.register("bench_core", pd.DataFrame({"event": core}))
    try:
        return source.sql("""
            SELECT s.account_id, s.as_of,
                COUNT(DISTINCT CASE WHEN e.occurred_at >= s.as_of - INTERVAL '7' DAY
                    THEN e.user_id END) AS wau,
                COUNT(DISTINCT CASE WHEN e.occurred_at >= s.as_of - INTERVAL '30' DAY
                    THEN e.user_id END) AS mau,
                CAST(COUNT(DISTINCT CASE WHEN e.occurred_at >= s.as_of - INTERVAL '30' DAY
                    AND e.event IN (SELECT event FROM bench_core) THEN e.event END) AS DOUBLE)
                    / (SELECT COUNT(*) FROM bench_core) AS core_breadth_30d,
                (SUM(CASE WHEN e.occurred_at >= s.as_of - INTERVAL '30' DAY THEN 1.0 ELSE 0 END)
                 - SUM(CASE WHEN e.occurred_at < s.as_of - INTERVAL '30' DAY THEN 1.0 ELSE 0 END))
                / NULLIF(SUM(CASE WHEN e.occurred_at < s.as_of - INTERVAL '30' DAY
                    THEN 1.0 ELSE 0 END), 0) AS usage_trend_30d
            FROM bench_spine s
            LEFT JOIN events e ON e.account_id = s.account_id
                AND e.occurred_at >= s.as_of - INTERVAL '60' DAY AND e.occurred_at < s.as_of
            GROUP BY s.account_id, s.as_of
        """)
    finally:
        source.con.unregister("bench_spine")
        source.con.unregister("bench_core")


def run_side(data: Path, side: str) -> dict[str, Any]:
    """Load, build the spine, then time one side; runs inside a child process."""
    t0 = time.perf_counter()
    source = load_source(data, now=NOW)
    spine = bench_spine(source)
    loaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    if side == "reference":
        frame = reference_query(source, spine)
    else:
        frame = build_snapshots(source=source, spine=spine, config=SnapshotConfig())
    wall = time.perf_counter() - t1
    events = source.con.execute("SELECT COUNT(*) FROM events").fetchall()[0][0]
    return {
        "side": side,
        "load_s": loaded,
        "wall_s": wall,
        "peak_mb": peak_rss_mb(),
        "rows": len(frame),
        "columns": frame.shape[1],
        "accounts": int(spine["account_id"].nunique()),
        "as_of": int(spine["as_of"].nunique()),
        "events": int(events),
    }


def in_child(data: Path, side: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--data", str(data), "--side", side]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def simulate(data: Path, accounts: int) -> None:
    nrr = shutil.which("nrr") or str(Path(sys.executable).with_name("nrr"))
    cmd = [nrr, "simulate", "--out", str(data), "--accounts", str(accounts), "--months", "30"]
    subprocess.run(cmd, check=True)


def synthetic(data: Path, accounts: int, *, seed: int) -> None:
    """A plain random company in contract form (no behaviour model), for timing only."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2026-10-01")
    data.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"A{i:05d}" for i in range(accounts)])
    created = end - pd.to_timedelta(rng.integers(60, 1000, accounts), unit="D")
    pd.DataFrame(
        {"account_id": ids, "created_at": created, "segment": rng.choice(["SMB", "MM"], accounts)}
    ).to_parquet(data / "accounts.parquet")
    churn = rng.random(accounts) < 0.25
    end_at = created + pd.to_timedelta(rng.integers(30, 900, accounts), unit="D")
    pd.DataFrame(
        {
            "account_id": ids,
            "start_at": created,
            "end_at": pd.Series(end_at).where(churn & (end_at < end)),
            "plan": "Pro",
            "arr": rng.lognormal(9, 1, accounts).round(0),
        }
    ).to_parquet(data / "subscriptions.parquet")
    n_users = rng.integers(3, 25, accounts)
    owner = np.repeat(ids, n_users)
    users = pd.DataFrame(
        {
            "account_id": owner,
            "user_id": [f"{a}-u{k}" for a, n in zip(ids, n_users, strict=True) for k in range(n)],
            "role": rng.choice(["admin", "member"], len(owner), p=[0.15, 0.85]),
            "created_at": np.repeat(created, n_users),
            "deactivated_at": pd.NaT,
        }
    )
    users.to_parquet(data / "users.parquet")
    _synthetic_events(data, users, end=end, rng=rng)
    (data / "manifest.yaml").write_text(f"extracted_at: '{end.isoformat()}'\n")
    (data / "event_map.yaml").write_text(SYNTHETIC_EVENT_MAP)


def _synthetic_events(
    data: Path, users: pd.DataFrame, *, end: pd.Timestamp, rng: np.random.Generator
) -> None:
    names = ["report_created", "dashboard_viewed", "record_imported", "search_run", "api_call"]
    names += ["workflow_automated", "teammate_invited", "feature_gate_hit", "login", "page_viewed"]
    per_user = rng.poisson(150, len(users))
    idx = np.repeat(np.arange(len(users)), per_user)
    created = users["created_at"].to_numpy()[idx]
    span = (np.datetime64(end) - created) / np.timedelta64(1, "s")
    offset = (rng.random(len(idx)) * span).astype("int64")
    pd.DataFrame(
        {
            "account_id": users["account_id"].to_numpy()[idx],
            "user_id": users["user_id"].to_numpy()[idx],
            "occurred_at": created + offset.astype("timedelta64[s]"),
            "event": rng.choice(names, len(idx)),
            "quantity": 1.0,
        }
    ).to_parquet(data / "events.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--simulate", action="store_true", help="generate with `nrr simulate`")
    parser.add_argument("--synthetic", action="store_true", help="generate a plain random company")
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--side", choices=["reference", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.data, args.side)))  # noqa: T201
        return
    if not any(args.data.glob("accounts.*")):
        if args.simulate:
            simulate(args.data, args.accounts)
        elif args.synthetic:
            synthetic(args.data, args.accounts, seed=0)
    report(in_child(args.data, "reference"), in_child(args.data, "full"))


def report(ref: dict[str, Any], full: dict[str, Any]) -> None:
    lines = [
        f"{full['accounts']:,} accounts, {full['as_of']} monthly as_of, {full['events']:,} events",
        f"load + validate: {full['load_s']:.1f} s (not timed below)",
        f"reference (wau, mau, core breadth, trend): {ref['wall_s']:.1f} s, "
        f"peak {ref['peak_mb']:,.0f} MB, {ref['rows']:,} rows x {ref['columns']} columns",
        f"full build_snapshots: {full['wall_s']:.1f} s, peak {full['peak_mb']:,.0f} MB, "
        f"{full['rows']:,} rows x {full['columns']} columns",
        f"ratio full / reference: {full['wall_s'] / max(ref['wall_s'], 1e-9):.2f}x "
        f"(goal <= 4x); peak memory goal < 2,048 MB",
    ]
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
