"""Print the time per stage of `nrr train` on a data folder (or a snapshot file).

python benchmarks/bench_train.py --data demo/data [--experiment experiments/quarterly.yaml]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd


def _snapshots(
    data: Path, *, horizon_days: int, freq: str
) -> tuple[pd.DataFrame, list[tuple[str, float]]]:
    from features.config import SnapshotConfig
    from features.load import load_source
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    stages: list[tuple[str, float]] = []
    start = time.perf_counter()
    source = load_source(data, now=pd.Timestamp(datetime.now(UTC)).tz_localize(None))
    stages.append(("load + validate", time.perf_counter() - start))
    start = time.perf_counter()
    config = SnapshotConfig.model_validate({"freq": freq, "horizon_days": horizon_days})
    spine = build_spine(source, freq=config.freq)
    frame = build_snapshots(source=source, spine=spine, config=config)
    stages.append(("spine + snapshots", time.perf_counter() - start))
    return frame, stages


def main() -> None:
    from models.workspace import Workspace
    from training.config import load_experiment
    from training.pipeline import train

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--snapshots", type=Path, default=None, help="skip building snapshots")
    parser.add_argument("--experiment", type=Path, default=Path("experiments/quarterly.yaml"))
    parser.add_argument("--workdir", type=Path, default=None, help="MLflow store (default: temp)")
    args = parser.parse_args()
    config = load_experiment(args.experiment)
    total = time.perf_counter()
    if args.snapshots is not None:
        frame, stages = (
            pd.read_parquet(args.snapshots),
            [("read snapshots", time.perf_counter() - total)],
        )
    else:
        frame, stages = _snapshots(
            args.data, horizon_days=config.snapshot.horizon_days, freq=config.snapshot.freq
        )
    oracle_path = args.data / "oracle.parquet"
    oracle = pd.read_parquet(oracle_path) if oracle_path.is_file() else None
    marks: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def progress(message: str) -> None:
        now = time.perf_counter()
        marks.append((message, now - last[0]))
        last[0] = now

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        result = train(snapshots=frame, config=config, settings=Workspace(workdir=workdir),
                       oracle=oracle, data_dir=args.data, progress=progress)  # fmt: skip
    marks.append(
        ("(logging, registration, gate of the last target)", time.perf_counter() - last[0])
    )
    print(f"rows: {len(frame):,} snapshots, {int(frame['labelled'].sum()):,} labelled")  # noqa: T201
    for name, seconds in stages + _grouped(marks):
        print(f"{seconds:8.1f} s  {name}")  # noqa: T201
    print(f"{time.perf_counter() - total:8.1f} s  TOTAL")  # noqa: T201
    for key in sorted(result.metrics):
        if key.endswith((".roc_auc", ".ece", ".brier")):
            print(f"{key:40s} {result.metrics[key]:.4f}")  # noqa: T201


def _grouped(marks: list[tuple[str, float]]) -> list[tuple[str, float]]:
    # Time reported by a progress message is the time spent since the previous one.
    out: dict[str, float] = {}
    for message, seconds in marks:
        key = message.split(" trial ")[0] + ": tuning" if " trial " in message else message
        out[key] = out.get(key, 0.0) + seconds
    return list(out.items())


if __name__ == "__main__":
    main()
