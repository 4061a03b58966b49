"""Time `nrr simulate`: wall time, peak RSS and rows written, at the default size or larger.

Usage: .venv/bin/python benchmarks/bench_simulate.py [--accounts N] [--months M] [--seed S]
Target: the default size (1,500 accounts x 36 months) under 60 s; memory bounded at any size
(accounts are simulated and written in batches).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from features.simulate import SimulationConfig, write_company


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here")
    args = parser.parse_args()
    config = SimulationConfig(accounts=args.accounts, months=args.months, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        began = time.perf_counter()
        cpu = time.process_time()
        summary = write_company(out, config)
        wall = time.perf_counter() - began
        size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"{args.accounts:,} accounts x {args.months} months, seed {args.seed}")
    print(
        f"wall {wall:.1f} s, cpu {time.process_time() - cpu:.1f} s, peak RSS {peak_rss_mb():.0f} MB"
    )
    print(
        f"written {size:.0f} MB; rows: " + ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    )
    print(
        f"90-day rates over {summary.pairs:,} labelled account-months: "
        f"churn {summary.rate(summary.churned):.1%}, expansion {summary.rate(summary.expanded):.1%}, "
        f"contraction {summary.rate(summary.contracted):.1%}"
    )


if __name__ == "__main__":
    main()
