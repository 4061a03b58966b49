"""The snapshot build on DuckDB and on Spark local[2], in one run: time, memory, statements.

Writes a simulated company (`nrr simulate`; default 50,000 accounts, 12 months) into
--data unless it holds one, then loads, validates and builds it once per engine, each in
its own child process so that peak memory is the engine's own (the process tree's
resident memory, sampled every 0.2 s: Python plus DuckDB, or Python plus Spark's JVM).
Prints per engine: load+validation time, build time, peak memory; the Spark statements
grouped by what they do, with their total time; and an estimate, from the measured
per-statement and per-row costs, of a 100k-account / 1B-event build on a small cluster.

Usage:
  .venv/bin/python benchmarks/bench_spark.py --data /tmp/bench50k
  .venv/bin/python benchmarks/bench_spark.py --data /tmp/bench2k --accounts 2000
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

END = pd.Timestamp("2026-10-01")
# the cluster the estimate is for: 8 workers x 4 cores (e.g. Databricks i3.xlarge x 8)
CLUSTER_CORES = 32
LOCAL_CORES = 2
# share of linear speed-up kept going from 2 to 32 cores (shuffles, skew, stragglers)
SCALING_EFFICIENCY = 0.5
# per-statement fixed cost on a warm cluster (job scheduling, planning, a small collect)
CLUSTER_STATEMENT_SECONDS = 1.0
TARGET_ACCOUNTS, TARGET_EVENTS, TARGET_MONTHS = 100_000, 1_000_000_000, 24


class PeakMemory:
    """Peak resident memory of this process and its children (a JVM), sampled."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _label(statement: dict[str, Any]) -> str:
    """What a statement does, the same for every build (random table tags removed)."""
    if statement["target"]:
        target = re.sub(r"^_nrr_[0-9a-f]+_(p\d+_)?", "", statement["target"])
        return f"{statement['op']} {target}"
    text = re.sub(r"_nrr_[0-9a-f]+(_p\d+)?_", "", " ".join(statement["sql"].split()))
    return f"{statement['op']} {text[:70]}"


def child(engine: str, data: Path, out: Path) -> None:
    """Load, validate and build on one engine; write timings and the statement trace."""
    from features.config import SnapshotConfig
    from features.load import load_source
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    result: dict[str, Any] = {"engine": engine}
    with PeakMemory() as memory:
        started = time.perf_counter()
        if engine == "spark":
            from features.engine import spark_session

            spark_session()
            result["session_s"] = time.perf_counter() - started
        t0 = time.perf_counter()
        source = load_source(data, now=END, engine=engine)
        result["load_s"] = time.perf_counter() - t0
        trace = source.engine.record()
        t0 = time.perf_counter()
        spine = build_spine(source)
        frame = build_snapshots(source=source, spine=spine, config=SnapshotConfig())
        result["build_s"] = time.perf_counter() - t0
        result["events"] = int(source.engine.rows("SELECT COUNT(*) FROM events")[0][0])
    result |= {
        "rows": len(frame),
        "accounts": int(frame["account_id"].nunique()),
        "peak_mb": memory.peak / 2**20,
        "statements": [
            {"op": s.op, "target": s.target, "sql": s.sql, "seconds": s.seconds} for s in trace
        ],
    }
    out.write_text(json.dumps(result))


def _run_child(engine: str, data: Path, folder: Path) -> dict[str, Any]:
    out = folder / f"bench_spark_{engine}.json"
    print(f"[{engine}] loading, validating and building ...", flush=True)
    cmd = [sys.executable, __file__, "--child", engine, "--data", str(data), "--json", str(out)]
    subprocess.run(cmd, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _statement_table(result: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(result["statements"])
    frame["what"] = [_label(s) for s in result["statements"]]
    table = frame.groupby("what")["seconds"].agg(["count", "sum", "median"])
    return table.sort_values("sum", ascending=False)


def _estimate(spark: dict[str, Any]) -> str:
    """A written estimate of a 100k-account / 1B-event build on a small cluster.

    One size cannot tell a statement's fixed cost from its per-row cost, so both ends are
    given: "high" charges everything above the cheapest statement to rows, "central" takes
    the median statement as fixed cost (on small data most of a statement is fixed cost).
    """
    stmts = pd.DataFrame(spark["statements"])
    stmts["scans_events"] = stmts["sql"].str.contains(r"FROM events e", regex=True)
    n = len(stmts[stmts["op"] != "drop"])
    small = stmts.loc[~stmts["scans_events"] & (stmts["op"] != "drop"), "seconds"]
    event_s = float(stmts.loc[stmts["scans_events"], "seconds"].sum())
    n_scans = int(stmts["scans_events"].sum())
    rows_target = TARGET_ACCOUNTS * TARGET_MONTHS * 0.85  # ~85% of accounts paying per month
    speedup = CLUSTER_CORES / LOCAL_CORES * SCALING_EFFICIENCY
    lines = [
        f"Measured on Spark local[{LOCAL_CORES}]: {n} statements; the two event scans "
        f"{event_s:.1f} s for {spark['events']:,} events; the other statements {small.sum():.1f} s "
        f"for {spark['rows']:,} snapshot rows (cheapest {small.min():.2f} s, median "
        f"{small.median():.2f} s each)."
    ]
    for name, fixed in (("high", float(small.min())), ("central", float(small.median()))):
        per_event = max(event_s - fixed * n_scans, 0.0) / spark["events"]
        per_row = max(float(small.sum()) - fixed * len(small), 0.0) / spark["rows"]
        est_events = per_event * TARGET_EVENTS / speedup
        est_rows = per_row * rows_target / speedup
        est_fixed = n * CLUSTER_STATEMENT_SECONDS
        lines.append(
            f"{name}: {per_event * 1e6:.1f} s per million events, {per_row * 1e3:.2f} ms per "
            f"snapshot row -> {TARGET_ACCOUNTS:,} accounts, {TARGET_EVENTS:,} events, "
            f"{TARGET_MONTHS} monthly snapshots (~{rows_target / 1e6:.1f}M rows) on "
            f"{CLUSTER_CORES} cores ({speedup:.0f}x local[{LOCAL_CORES}]): event scans "
            f"~{est_events / 60:.0f} min, per-row work ~{est_rows / 60:.0f} min, {n} statements "
            f"x {CLUSTER_STATEMENT_SECONDS:.0f} s ~{est_fixed / 60:.1f} min; total "
            f"~{(est_events + est_rows + est_fixed) / 60:.0f} min."
        )
    lines.append(
        "Assumptions: cost linear in events and rows (the event scans shuffle by account, "
        "user and day, the window tables by account and as_of; a few accounts holding most "
        "events would break it), 50% scaling efficiency from 2 to 32 cores, one build "
        "partition (Spark builds unsplit); the driver receives one row per (account, as_of) "
        "per builder: size it at 16 GB or more."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=("duckdb", "spark"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.json)
        return
    if not (args.data / "accounts.parquet").exists():
        from features.simulate import SimulationConfig, write_company

        print(f"simulating {args.accounts:,} accounts x {args.months} months ...", flush=True)
        config = SimulationConfig(
            accounts=args.accounts, months=args.months, seed=args.seed, end=END
        )
        write_company(args.data, config)
    results = {e: _run_child(e, args.data, args.data.parent) for e in ("duckdb", "spark")}
    print()
    print(
        f"{'engine':8} {'accounts':>9} {'events':>12} {'rows':>8} {'load+validate':>14} "
        f"{'build':>8} {'peak MB':>8}"
    )
    for engine, r in results.items():
        print(
            f"{engine:8} {r['accounts']:>9,} {r['events']:>12,} {r['rows']:>8,} "
            f"{r['load_s']:>13.1f}s {r['build_s']:>7.1f}s {r['peak_mb']:>8.0f}"
        )
    if "session_s" in results["spark"]:
        print(f"(Spark session start {results['spark']['session_s']:.1f} s, not included)")
    for engine, r in results.items():
        table = _statement_table(r)
        print(f"\n{engine}: {len(r['statements'])} statements, top 12 by total time")
        print(table.head(12).round(2).to_string())
    print()
    print(_estimate(results["spark"]))
    print(f"(measured on {args.accounts:,} accounts; the default is 50,000)")


if __name__ == "__main__":
    main()
