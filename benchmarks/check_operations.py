"""Issue 13's acceptance check: `nrr serve --workers N` over a trained workspace, healthy and
with a black-holed registry, an empty store and a damaged model file.

For each case, from the moment the process is launched: seconds until /healthz answers,
seconds until every account of the snapshots file has been answered (GET score, 200), then
reloads under 4 threads of traffic (failed requests counted), a key made with
`nrr apikey create` (seconds until every worker accepts it) and SIGTERM (seconds to exit).

Usage: python benchmarks/check_operations.py --workdir WS --snapshots FILE [--workers 2]
(WS: a folder where `nrr train` ran; the damaged case truncates its champions' model files,
so it runs last and the workspace is not usable afterwards).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

NRR = Path(sys.executable).parent / "nrr"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def black_hole() -> socket.socket:
    """A socket that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def make_key(keys_file: Path, role: str) -> str:
    done = subprocess.run(
        [str(NRR), "apikey", "create", "--role", role, "--keys-file", str(keys_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def accepted_by_every_worker(url: str, key: str, workers: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        seen: dict[int, bool] = {}
        for _ in range(10 * workers):
            with httpx.Client(base_url=url, timeout=5) as client:
                pid = client.get("/readyz").json()["worker_pid"]
                seen[pid] = client.get("/v1/ping", headers={"X-API-Key": key}).status_code == 200
        if len(seen) >= workers and all(seen.values()):
            return time.monotonic() - started
        time.sleep(0.1)
    return float("nan")


def run_case(
    name: str, env_extra: dict[str, str], ids: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="nrr-check-"))
    keys_file = root / "keys.json"
    reader, admin = make_key(keys_file, "reader"), make_key(keys_file, "admin")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NRR_", "MLFLOW_"))}
    env.update(
        {
            "NRR_SNAPSHOTS_PATH": str(args.snapshots),
            "NRR_API_KEYS_PATH": str(keys_file),
            "NRR_WORKDIR": str(args.workdir),
            **env_extra,
        }
    )
    cmd = [str(NRR), "serve", "--port", str(port), "--workers", str(args.workers)]
    cmd += ["--log-level", args.log_level]
    launched = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL)
    out: dict[str, Any] = {"case": name}
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    out["healthz_s"] = time.monotonic() - launched
                    break
            except httpx.TransportError:
                time.sleep(0.02)
        headers = {"X-API-Key": reader}
        pending = list(ids)
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            while pending and time.monotonic() - launched < 300:
                pending = [
                    a for a in pending if client.get(f"/v1/accounts/{a}/score").status_code != 200
                ]
                if pending:
                    time.sleep(0.2)
            out["all_accounts_s"] = time.monotonic() - launched if not pending else float("nan")
        # Each worker loads for itself and answers 503 "loading" until then: the reloads
        # below start once every worker serves (a client reaching a loading worker retries).
        out["all_workers_s"] = every_worker_serving(url, args.workers, launched)
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            ready = client.get("/readyz").json()
            out["status"] = ready["status"]
            out["versions"] = ready["model_versions"]
            out["reason"] = (ready["fallback_reason"] or "")[:90]
            sample = client.get(f"/v1/accounts/{ids[0]}/score").json()
            out["source"] = sample["source"]
        out.update(reloads_under_traffic(url, reader, admin, ids, args.reloads))
        out["new_key_s"] = accepted_by_every_worker(
            url, make_key(keys_file, "reader"), args.workers, 30
        )
    finally:
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out["sigterm_s"] = time.monotonic() - stopped
        shutil.rmtree(root, ignore_errors=True)
    return out


def reloads_under_traffic(
    url: str, reader: str, admin: str, ids: list[str], reloads: int
) -> dict[str, Any]:
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    kinds: dict[str, int] = {}
    lock = threading.Lock()
    before = worker_pids(url)

    def traffic(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": reader}) as client:
            i = offset
            while not stop.is_set():
                try:
                    status = client.get(f"/v1/accounts/{ids[i % len(ids)]}/score").status_code
                    kind = str(status)
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                with lock:
                    counts["ok" if kind == "200" else "failed"] += 1
                    if kind != "200":
                        kinds[kind] = kinds.get(kind, 0) + 1
                i += 7

    threads = [threading.Thread(target=traffic, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    statuses = []
    try:
        for _ in range(reloads):
            reply = httpx.post(f"{url}/v1/admin/reload", headers={"X-API-Key": admin}, timeout=300)
            statuses.append(reply.json()["status"])
            time.sleep(2)  # the other workers follow meanwhile
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    after = worker_pids(url)
    return {
        "failures": kinds,
        "workers_before_after": (sorted(before), sorted(after)),
        "reloads": ",".join(statuses),
        "requests": counts["ok"] + counts["failed"],
        "failed": counts["failed"],
    }


def every_worker_serving(url: str, workers: int, launched: float) -> float:
    """Seconds from launch until `workers` distinct workers answered /readyz with 200."""
    seen: set[int] = set()
    while len(seen) < workers and time.monotonic() - launched < 300:
        with httpx.Client(base_url=url, timeout=30) as client:
            ready = client.get("/readyz")
            if ready.status_code == 200:
                seen.add(ready.json()["worker_pid"])
            else:
                time.sleep(0.1)
    return time.monotonic() - launched


def worker_pids(url: str) -> set[str]:
    """The pids of the workers alive now, from /metrics (a gauge per worker)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        line.split('pid="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("nrr_serving_generation{")
    }


def damage(workdir: Path) -> list[Path]:
    """Truncate every model file under the workspace's artifacts to half its bytes: the
    booster (model.txt), or model.json for a logistic model (which has no booster)."""
    hit = []
    for meta in sorted(workdir.rglob("model.json")):
        path = meta.with_name("model.txt") if meta.with_name("model.txt").exists() else meta
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        hit.append(path)
    return hit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--snapshots", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--cases", default="healthy,black-hole,empty,damaged")
    parser.add_argument("--log-level", default="warning", help="of nrr serve (stderr)")
    args = parser.parse_args()
    args.workdir, args.snapshots = args.workdir.resolve(), args.snapshots.resolve()
    frame = pd.read_parquet(args.snapshots, columns=["account_id", "as_of"])
    latest = frame[pd.to_datetime(frame["as_of"]) == pd.to_datetime(frame["as_of"]).max()]
    ids = sorted(latest["account_id"].astype(str).unique())
    print(f"{len(ids)} accounts in the latest snapshot; {args.workers} workers", flush=True)
    cases = args.cases.split(",")
    rows = []
    if "healthy" in cases:
        rows.append(run_case("healthy", {}, ids, args))
        print(rows[-1], flush=True)
    if "black-hole" in cases:
        hole = black_hole()
        try:
            uri = f"http://127.0.0.1:{hole.getsockname()[1]}"
            rows.append(run_case("black-holed registry", {"MLFLOW_TRACKING_URI": uri}, ids, args))
            print(rows[-1], flush=True)
        finally:
            hole.close()
    if "empty" in cases:
        empty = Path(tempfile.mkdtemp(prefix="nrr-empty-store-"))
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=f"sqlite:///{empty}/mlflow.db").search_experiments()
        rows.append(run_case("empty store", {"NRR_WORKDIR": str(empty)}, ids, args))
        print(rows[-1], flush=True)
        shutil.rmtree(empty, ignore_errors=True)
    if "damaged" in cases:
        damaged = damage(args.workdir)
        print(f"truncated {len(damaged)} model file(s)", flush=True)
        rows.append(run_case("damaged model file", {}, ids, args))
        print(rows[-1], flush=True)
    print(
        f"\n{'case':<22} {'/healthz s':>10} {'all accts s':>11} {'all workers s':>13} "
        f"{'status':<9} {'source':<6} "
        f"{'reloads':<26} {'requests':>8} {'failed':>6} {'new key s':>9} {'SIGTERM s':>9}"
    )
    for r in rows:
        print(
            f"{r['case']:<22} {r['healthz_s']:10.2f} {r['all_accounts_s']:11.2f} "
            f"{r['all_workers_s']:13.2f} "
            f"{r['status']:<9} {r['source']:<6} {r['reloads']:<26} {r['requests']:8d} "
            f"{r['failed']:6d} {r['new_key_s']:9.2f} {r['sigterm_s']:9.2f}"
        )
        print(f"{'':<22} versions {r['versions']}; reason: {r['reason'] or '-'}")
        print(f"{'':<22} failures {r['failures']}; workers {r['workers_before_after']}")


if __name__ == "__main__":
    main()
