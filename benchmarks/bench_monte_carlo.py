"""Time the one-quarter Monte Carlo: 50,000 accounts x 10,000 draws (target: under 10 s).

Prints the median of three runs and the peak resident memory, for one thread and for two.
Usage: .venv/bin/python benchmarks/bench_monte_carlo.py [--accounts N] [--draws D]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any

import numpy as np

from models.revenue.forecast import simulate_outcomes


def synthetic_book(n: int, *, seed: int) -> dict[str, Any]:
    """A book with realistic 90-day rates: ~4% churn, ~10% expansion, ~4% contraction."""
    rng = np.random.default_rng(seed)
    return {
        "arr": rng.lognormal(9.5, 1.2, n),
        "p_churn": rng.beta(1, 24, n),
        "p_expand": rng.beta(1, 9, n),
        "p_contract": rng.beta(1, 24, n),
        "expand_mu": rng.normal(0.25, 0.05, n).clip(0.05),
        "expand_sigma": np.full(n, 0.2),
        "contract_mu": np.full(n, -0.3),
        "contract_sigma": np.full(n, 0.2),
        "groups": rng.choice(np.array(["SMB", "Mid-Market", "Enterprise"]), n),
    }


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    book = synthetic_book(args.accounts, seed=0)
    before = peak_rss_mb()
    print(f"{args.accounts:,} accounts x {args.draws:,} draws, median of {args.repeats} runs")
    for workers in (1, 2):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = simulate_outcomes(**book, draws=args.draws, seed=1, workers=workers)
            times.append(time.perf_counter() - start)
        nrr = result.summary.query("group == 'All' and metric == 'nrr'").iloc[0]
        print(
            f"workers={workers}: median {statistics.median(times):.2f} s "
            f"(runs {', '.join(f'{t:.2f}' for t in times)}); "
            f"pooled NRR P10/P50/P90 {nrr['p10']:.4f} / {nrr['p50']:.4f} / {nrr['p90']:.4f}"
        )
    print(f"peak RSS {peak_rss_mb():.0f} MB (inputs and interpreter: {before:.0f} MB)")


if __name__ == "__main__":
    main()
