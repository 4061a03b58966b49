"""Benchmark the API over loopback with wrk, against its own ceilings measured in the same run.

References: an authenticated no-op endpoint of the same app (framework ceiling) and the
in-process cost of predict + drivers of the same models (compute limit). Prints throughput,
p99 and the ratios issue 6 asks for. Usage: python benchmarks/bench_api.py [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Before LightGBM loads: the same one-thread-per-prediction setting `nrr serve` uses.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import httpx  # noqa: E402
import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.registry import FEATURES  # noqa: E402
from models.scoring.booster import ScoringModel, learn_levels  # noqa: E402
from models.scoring.calibration import ScoreToProbability  # noqa: E402
from models.scoring.drivers import top_drivers  # noqa: E402
from serving.security import append_key, new_key  # noqa: E402

AS_OF = pd.Timestamp("2026-09-01")
CATEGORIES = {"segment": ["SMB", "Mid-Market", "Enterprise"], "plan": ["Basic", "Pro", "Scale"]}


def synthetic_snapshots(n: int, seed: int) -> pd.DataFrame:
    """n accounts at one as_of with every registry feature (random but plausible ranges)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {
        "account_id": [f"acct-{i:05d}" for i in range(n)],
        "as_of": pd.to_datetime([AS_OF] * n),
        "csm_owner": pd.Series([f"csm{i % 7}" for i in range(n)], dtype="string"),
        "renewal_at": AS_OF + pd.to_timedelta(rng.integers(1, 365, n), unit="D"),
    }
    for spec in FEATURES:
        if spec.kind == "category":
            levels = CATEGORIES.get(spec.name, ["a", "b", "c"])
            cols[spec.name] = pd.Series(rng.choice(levels, n), dtype="string")
        elif spec.kind == "bool":
            cols[spec.name] = rng.integers(0, 2, n).astype(float)
        else:
            # Inside the registry's range: POST /v1/score refuses values outside it (422).
            values = rng.gamma(2.0, 10.0, n)
            low, high = spec.minimum, spec.maximum
            if low is not None and high is not None:
                values = low + (high - low) * rng.random(n)
            elif low is not None:
                values = low + values
            cols[spec.name] = values
    return pd.DataFrame(cols)


def train(frame: pd.DataFrame, *, target: str, trees: int, seed: int) -> ScoringModel:
    features = tuple(s.name for s in FEATURES if s.name in frame.columns)
    levels = learn_levels(frame, features)
    x = ScoringModel(booster=None, feature_names=features, levels=levels).matrix(frame)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    logit = -0.05 * (x["mau"] - 20) + 0.04 * (x["days_since_last_activity"] - 20)
    y = rng.random(len(x)) < 1 / (1 + np.exp(-logit))
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": seed}
    data = lgb.Dataset(x, label=y, categorical_feature=list(levels))
    booster = lgb.train(params, data, num_boost_round=trees)
    return ScoringModel(booster, features, levels, metadata={"target": target})


def register(models: dict[str, ScoringModel], root: Path) -> str:
    """A SQLite MLflow registry holding both models as champions; returns its URI."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("bench", artifact_location=str(root / "artifacts"))
    grid = np.linspace(0, 100, 21)
    for name, model in models.items():
        folder = root / name
        model.save(folder)
        decreasing = name == "nrr-churn"
        labels = (grid < 50) if decreasing else (grid > 50)
        calib = ScoreToProbability.fit(grid, labels.astype(float), decreasing=decreasing)
        (folder / "fallback_calibration.json").write_text(json.dumps(calib.to_dict()))
        run = client.create_run(exp)
        client.log_artifacts(run.info.run_id, str(folder), "model")
        client.create_registered_model(name)
        source = f"{run.info.artifact_uri}/model"
        version = client.create_model_version(name, source=source, run_id=run.info.run_id)
        client.set_registered_model_alias(name, "champion", version.version)
    return uri


def in_process(models: list[ScoringModel], frame: pd.DataFrame, *, repeats: int) -> float:
    """Median seconds of predict + top-5 drivers of `frame` by every model."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for model in models:
            model.predict_proba(frame)
            top_drivers(model, frame, k=5)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def request_body(frame: pd.DataFrame) -> str:
    accounts = []
    for _, row in frame.iterrows():
        features = {
            s.name: (
                None
                if pd.isna(row[s.name])
                else (str(row[s.name]) if s.kind == "category" else float(row[s.name]))
            )
            for s in FEATURES
            if s.kind != "bool"
        }
        features.update({s.name: bool(row[s.name]) for s in FEATURES if s.kind == "bool"})
        accounts.append(
            {
                "account_id": row["account_id"],
                "as_of": row["as_of"].isoformat(),
                "renewal_at": row["renewal_at"].isoformat(),
                "features": features,
            }
        )
    return json.dumps({"accounts": accounts, "drivers": True})


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: running `apt-get install -y wrk`", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def run_wrk(
    wrk: str, url: str, *, key: str, conns: int, seconds: int, body_file: Path | None = None
) -> dict[str, float]:
    """Requests/s and p50/p99 latency (ms) of one bounded wrk run."""
    script = body_file.with_suffix(".lua") if body_file else None
    if script is not None and body_file is not None:
        script.write_text(
            f'local f = io.open("{body_file}", "r")\nwrk.method = "POST"\n'
            'wrk.body = f:read("*a")\nf:close()\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    cmd = [wrk, "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "--timeout", f"{seconds}s"]
    cmd += ["--latency", "-H", f"X-API-Key: {key}"]
    cmd += ["-s", str(script)] if script else []
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses on {url}:\n{out}")
    return {"rps": rps, "p50_ms": _pct(out, "50"), "p99_ms": _pct(out, "99")}


def _pct(out: str, which: str) -> float:
    match = re.search(rf"\s{which}%\s+([\d.]+)(us|ms|s)", out)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def start_server(env: dict[str, str], port: int, cwd: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "nrr.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if ready.status_code == 200:
                print(f"server: {ready.json()['status']} {ready.json()['model_versions']}")
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server not ready within 120 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = parser.parse_args()
    wrk = ensure_wrk()
    cores = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="nrr-bench-"))
    frame = synthetic_snapshots(args.accounts, seed=0)
    frame.to_parquet(root / "snapshots.parquet")
    churn = train(frame, target="churned", trees=args.trees, seed=1)
    expansion = train(frame, target="expanded", trees=args.trees, seed=2)
    uri = register({"nrr-churn": churn, "nrr-expansion": expansion}, root)
    clear, record = new_key("reader")
    append_key(root / "keys.json", record)

    one, batch = frame.head(1), frame.head(1000)
    ref_one_single = in_process([churn], one, repeats=200)
    ref_one = in_process([churn, expansion], one, repeats=200)
    ref_batch = in_process([churn, expansion], batch, repeats=3)
    (root / "one.json").write_text(request_body(one))
    (root / "batch.json").write_text(request_body(batch))

    env = {
        **os.environ,
        "NRR_TRACKING_URI": uri,
        "NRR_SNAPSHOTS_PATH": str(root / "snapshots.parquet"),
        "NRR_API_KEYS_PATH": str(root / "keys.json"),
        "NRR_ARTIFACTS_DIR": str(root / "downloaded"),
        "NRR_MAX_BODY_BYTES": "50000000",
    }
    port = _free_port()
    proc = start_server(env, port, root)
    base = f"http://127.0.0.1:{port}"
    d = args.duration
    try:
        noop = run_wrk(wrk, f"{base}/v1/ping", key=clear, conns=8, seconds=d)
        get = run_wrk(wrk, f"{base}/v1/accounts/acct-00042/score", key=clear, conns=8, seconds=d)
        post1_c1 = run_wrk(
            wrk, f"{base}/v1/score", key=clear, conns=1, seconds=d, body_file=root / "one.json"
        )
        post1_c2 = run_wrk(
            wrk, f"{base}/v1/score", key=clear, conns=cores, seconds=d, body_file=root / "one.json"
        )
        # Long enough for several whole batches, bounded so a slow host still finishes.
        batch_window = int(min(180, max(d, 4 * ref_batch + 5)))
        postb = run_wrk(
            wrk,
            f"{base}/v1/score",
            key=clear,
            conns=1,
            seconds=batch_window,
            body_file=root / "batch.json",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)
    report(cores, noop, get, post1_c1, post1_c2, postb, ref_one_single, ref_one, ref_batch)


def report(
    cores: int,
    noop: dict[str, float],
    get: dict[str, float],
    post1_c1: dict[str, float],
    post1_c2: dict[str, float],
    postb: dict[str, float],
    ref_one_single: float,
    ref_one: float,
    ref_batch: float,
) -> None:
    limit = cores / ref_one
    batch_rows = 1000 * postb["rps"]
    print(f"cores={cores}  OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(
        f"in-process predict+drivers, 1 row: churn only {ref_one_single * 1e3:.2f} ms, churn+expansion {ref_one * 1e3:.2f} ms"
    )
    print(
        f"in-process predict+drivers, 1000 rows (both models): {ref_batch * 1e3:.0f} ms = {1000 / ref_batch:.0f} rows/s"
    )
    rows = [
        ("GET /v1/ping (no-op) c=8", noop),
        ("GET /v1/accounts/{id}/score c=8", get),
        ("POST /v1/score 1 account c=1", post1_c1),
        (f"POST /v1/score 1 account c={cores}", post1_c2),
        ("POST /v1/score 1000 accounts c=1", postb),
    ]
    for name, r in rows:
        print(
            f"{name:38s} {r['rps']:9.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:8.2f} ms"
        )
    print("ratios (goal):")
    print(
        f"  GET score / no-op throughput      {get['rps'] / noop['rps']:.2f}  (>= 0.50), p99 {get['p99_ms']:.2f} ms (< 5)"
    )
    print(
        f"  POST one / compute limit          {post1_c2['rps'] / limit:.2f}  (>= 0.70; limit = cores / in-process cost = {limit:.0f}/s)"
    )
    print(
        f"  POST one p99 c=1 - in-process     {post1_c1['p99_ms'] - ref_one * 1e3:.2f} ms  (<= 3)"
    )
    print(f"  POST 1000 / in-process batch      {batch_rows / (1000 / ref_batch):.2f}  (>= 0.70)")


if __name__ == "__main__":
    main()
