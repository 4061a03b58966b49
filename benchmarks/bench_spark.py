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


def _record_from_creation() -> None:
    """Make every engine record its statements from creation, so the trace also holds the
    load and validation statements (run inside load_source, before it returns the engine)."""
    from features.engine.base import Engine

    original = Engine.__init__

    def init(self: Engine) -> None:
        original(self)
        self.trace = []

    Engine.__init__ = init  # type: ignore[method-assign]


def child(engine: str, data: Path, out: Path, driver_memory: str) -> None:
    """Load, validate and build on one engine; write timings and the statement trace."""
    from features.config import SnapshotConfig
    from features.load import load_source
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    _record_from_creation()
    result: dict[str, Any] = {"engine": engine}
    with PeakMemory() as memory:
        started = time.perf_counter()
        if engine == "spark":
            from features.engine import spark_session

            # local mode runs the executors inside the driver JVM: its heap is Spark's memory
            spark_session(conf={"spark.driver.memory": driver_memory})
            result["session_s"] = time.perf_counter() - started
        t0 = time.perf_counter()
        source = load_source(data, now=END, engine=engine)
        result["load_s"] = time.perf_counter() - t0
        trace = source.engine.trace
        assert trace is not None
        n_load = len(trace)
        t0 = time.perf_counter()
        spine = build_spine(source)
        frame = build_snapshots(source=source, spine=spine, config=SnapshotConfig())
        result["build_s"] = time.perf_counter() - t0
        n_build = len(trace)
        result["events"] = int(source.engine.rows("SELECT COUNT(*) FROM events")[0][0])
    result |= {
        "rows": len(frame),
        "accounts": int(frame["account_id"].nunique()),
        "peak_mb": memory.peak / 2**20,
        "load_statements": [_as_dict(s) for s in trace[:n_load]],
        "statements": [_as_dict(s) for s in trace[n_load:n_build]],
    }
    out.write_text(json.dumps(result))


def _as_dict(statement: Any) -> dict[str, Any]:
    return {
        "op": statement.op,
        "target": statement.target,
        "sql": statement.sql,
        "seconds": statement.seconds,
    }


def _run_child(engine: str, data: Path, folder: Path, driver_memory: str) -> dict[str, Any]:
    out = folder / f"bench_spark_{engine}.json"
    print(f"[{engine}] loading, validating and building ...", flush=True)
    cmd = [sys.executable, __file__, "--child", engine, "--data", str(data), "--json", str(out)]
    cmd += ["--driver-memory", driver_memory]
    subprocess.run(cmd, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _statement_table(statements: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(statements)
    frame["what"] = [_label(s) for s in statements]
    table = frame.groupby("what")["seconds"].agg(["count", "sum", "median"])
    return table.sort_values("sum", ascending=False)


def _parts(spark: dict[str, Any]) -> dict[str, tuple[float, int, float]]:
    """Seconds, statements and size of the three parts the estimate scales separately:
    validation (scales with events), the build's event scans (events), the rest of the
    build (snapshot rows)."""
    build = pd.DataFrame(spark["statements"])
    build = build[build["op"] != "drop"]
    scans = build["sql"].str.contains(r"FROM events e", regex=True)
    load = pd.DataFrame(spark["load_statements"])
    return {
        "validation": (float(load["seconds"].sum()), len(load), float(spark["events"])),
        "event scans": (
            float(build.loc[scans, "seconds"].sum()),
            int(scans.sum()),
            float(spark["events"]),
        ),
        "per-row work": (
            float(build.loc[~scans, "seconds"].sum()),
            int((~scans).sum()),
            float(spark["rows"]),
        ),
    }


def _estimate(spark: dict[str, Any], reference: dict[str, Any] | None = None) -> str:
    """A written estimate of a 100k-account / 1B-event build on a small cluster.

    With a reference run of another size (`--reference`), each part's fixed cost and its
    cost per event or per row are the line through the two sizes. With one size they
    cannot be told apart, so both ends are given: "high" charges everything above the
    cheapest statement to rows, "central" takes the median statement as fixed cost.
    """
    rows_target = TARGET_ACCOUNTS * TARGET_MONTHS * 0.85  # ~85% of accounts paying per month
    targets = {
        "validation": TARGET_EVENTS,
        "event scans": TARGET_EVENTS,
        "per-row work": rows_target,
    }
    speedup = CLUSTER_CORES / LOCAL_CORES * SCALING_EFFICIENCY
    big = _parts(spark)
    n = sum(count for _, count, _ in big.values())
    lines = [
        f"Measured on Spark local[{LOCAL_CORES}], {spark['events']:,} events, "
        f"{spark['rows']:,} snapshot rows: "
        + "; ".join(f"{k} {sec:.1f} s in {cnt} statements" for k, (sec, cnt, _) in big.items())
        + "."
    ]
    fits: list[tuple[str, dict[str, tuple[float, float]]]] = []
    if reference is not None:
        small = _parts(reference)
        fit = {}
        for key, (sec, _, size) in big.items():
            sec0, _, size0 = small[key]
            per_unit = max((sec - sec0) / (size - size0), 0.0)
            fit[key] = (max(sec - per_unit * size, 0.0), per_unit)
        lines.append(
            f"Fitted through a {reference['accounts']:,}-account run ({reference['events']:,} "
            "events): "
            + "; ".join(
                f"{k} {fixed:.0f} s fixed + {unit * (1e6 if k != 'per-row work' else 1e3):.2f} s "
                f"per {'million events' if k != 'per-row work' else 'thousand rows'}"
                for k, (fixed, unit) in fit.items()
            )
            + "."
        )
        fits.append(("two sizes", fit))
    else:
        build = pd.DataFrame(spark["statements"])
        build = build[(build["op"] != "drop") & ~build["sql"].str.contains("FROM events e")]
        for name, each in (
            ("high", float(build["seconds"].min())),
            ("central", float(build["seconds"].median())),
        ):
            fit = {}
            for key, (sec, cnt, size) in big.items():
                fixed = min(each * cnt, sec)
                fit[key] = (fixed, (sec - fixed) / size)
            fits.append((name, fit))
    for name, fit in fits:
        est = {k: unit * targets[k] / speedup for k, (_, unit) in fit.items()}
        est_fixed = n * CLUSTER_STATEMENT_SECONDS
        lines.append(
            f"{name}: {TARGET_ACCOUNTS:,} accounts, {TARGET_EVENTS:,} events, {TARGET_MONTHS} "
            f"monthly snapshots (~{rows_target / 1e6:.1f}M rows) on {CLUSTER_CORES} cores "
            f"({speedup:.0f}x local[{LOCAL_CORES}]): "
            + ", ".join(f"{k} ~{v / 60:.0f} min" for k, v in est.items())
            + f", {n} statements x {CLUSTER_STATEMENT_SECONDS:.0f} s ~{est_fixed / 60:.1f} min; "
            f"total ~{(sum(est.values()) + est_fixed) / 60:.0f} min."
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
    parser.add_argument(
        "--reference",
        type=Path,
        help="bench_spark_spark.json of a run at another size: fixed and per-row costs fitted",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="print the report of the JSON files already in --data's parent",
    )
    parser.add_argument(
        "--driver-memory", default="6g", help="Spark driver heap (local mode: all of Spark's)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.json, args.driver_memory)
        return
    if args.report:
        results = {
            e: json.loads((args.data.parent / f"bench_spark_{e}.json").read_text())
            for e in ("duckdb", "spark")
        }
        reference = json.loads(args.reference.read_text()) if args.reference else None
        _report(results, reference)
        return
    if not (args.data / "accounts.parquet").exists():
        from features.simulate import SimulationConfig, write_company

        print(f"simulating {args.accounts:,} accounts x {args.months} months ...", flush=True)
        config = SimulationConfig(
            accounts=args.accounts, months=args.months, seed=args.seed, end=END
        )
        write_company(args.data, config)
    results = {
        e: _run_child(e, args.data, args.data.parent, args.driver_memory)
        for e in ("duckdb", "spark")
    }
    reference = json.loads(args.reference.read_text()) if args.reference else None
    _report(results, reference)


def _report(results: dict[str, dict[str, Any]], reference: dict[str, Any] | None) -> None:
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
        for part in ("load_statements", "statements"):
            what = "load + validation" if part == "load_statements" else "build"
            table = _statement_table(r[part])
            total = sum(s["seconds"] for s in r[part])
            print(
                f"\n{engine} {what}: {len(r[part])} statements, {total:.1f} s in statements; "
                "top 12 by total time"
            )
            print(table.head(12).round(2).to_string())
    print()
    print(_estimate(results["spark"], reference))


if __name__ == "__main__":
    main()
