"""Soak: `nrr serve --workers N` at capacity for 10 minutes, a promotion and reload every
minute and an API key rotation in the middle; errors, p50/p99 per minute, worker memory.

wrk (closed loop, so the server runs at its capacity) asks for random precomputed accounts,
one request in 50 a POST /v1/score of one account. Every minute, 30 s in: the churn alias
moves to the other of two registered versions and POST /v1/admin/reload reaches one worker;
the time until every worker serves the new version is read from /metrics (per-pid gauges).
In the middle minute a key made with `nrr apikey create` replaces wrk's key (as soon as
every worker accepts it) and the old key is revoked with `nrr apikey revoke` while wrk runs.

Figures: errors (non-2xx and socket errors: must be 0), p50/p99 per minute, resident memory
summed over the workers after each minute and its growth after the first (warm-up) minute
(< 5%). Usage: python benchmarks/bench_soak.py [--minutes 10] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

POST_EVERY = 50
# A reload at capacity on a shared 2-core host can take a minute; wait this long for it.
RELOAD_WAIT = 240.0
NRR = Path(sys.executable).parent / "nrr"


def lua_mix(path: Path, body_file: Path, accounts: int) -> Path:
    path.write_text(
        f'local f = io.open("{body_file}", "r")\nlocal body = f:read("*a")\nf:close()\n'
        "local n = 0\nmath.randomseed(11)\n"
        "request = function()\n"
        "  n = n + 1\n"
        f"  if n % {POST_EVERY} == 0 then\n"
        "    local h = {}\n"
        "    for k, v in pairs(wrk.headers) do h[k] = v end\n"
        '    h["Content-Type"] = "application/json"\n'
        '    return wrk.format("POST", "/v1/score", h, body)\n'
        "  end\n"
        '  return wrk.format("GET", string.format("/v1/accounts/acct-%05d/score", '
        f"math.random(0, {accounts - 1})))\n"
        "end\n"
    )
    return path


def register_version(uri: str, root: Path, name: str, seed: int, trees: int) -> str:
    """One more version of `name` (a model trained with another seed); returns its number."""
    import pandas as pd
    from bench_api import train
    from mlflow import MlflowClient

    frame = pd.read_parquet(root / "snapshots.parquet")
    folder = root / f"{name}-v{seed}"
    train(frame, target="churned", trees=trees, seed=seed).save(folder)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("bench")
    assert exp is not None
    run = client.create_run(exp.experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(version.version)


def set_alias(uri: str, name: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        name, "champion", version
    )


def worker_versions(url: str) -> dict[str, str]:
    """pid -> the churn version it serves, from /metrics (nrr_model_info per pid, value 1)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("nrr_model_info{") or not line.endswith(" 1.0"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("model") == "churn":
            found[labels.get("pid", "-")] = labels["version"]
    return found


def rss_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def accepted_everywhere(url: str, key: str, workers: int, want: int, timeout: float) -> float:
    """Seconds until `want` (200 or 401) answers /v1/ping with `key` on every worker."""
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        ok: set[int] = set()
        for _ in range(8 * workers):
            with httpx.Client(base_url=url, timeout=5) as client:
                pid = client.get("/readyz").json()["worker_pid"]
                if client.get("/v1/ping", headers={"X-API-Key": key}).status_code == want:
                    ok.add(pid)
                else:
                    ok.discard(pid)
                    break
        else:
            if len(ok) >= workers:
                return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"key not answered {want} by every worker within {timeout:.0f} s")


class Reloader(threading.Thread):
    """30 s into the minute: move the churn alias and POST /v1/admin/reload; then time how
    long until every worker serves the new version."""

    def __init__(self, url: str, admin: str, uri: str, target: str, workers: int, at: float):
        super().__init__(daemon=True)
        self.url, self.admin, self.uri, self.target = url, admin, uri, target
        self.workers, self.at = workers, at
        self.status = "not run"
        self.converged: float | None = None

    def run(self) -> None:
        import httpx

        time.sleep(self.at)
        set_alias(self.uri, "nrr-churn", self.target)
        started = time.monotonic()
        try:
            reply = httpx.post(
                f"{self.url}/v1/admin/reload",
                headers={"X-API-Key": self.admin},
                timeout=RELOAD_WAIT,
            )
            self.status = reply.json().get("status", str(reply.status_code))
        except httpx.HTTPError as exc:  # the reload goes on in the server; say what we saw
            self.status = type(exc).__name__
        while time.monotonic() - started < RELOAD_WAIT:
            versions = worker_versions(self.url)
            if len(versions) >= self.workers and set(versions.values()) == {self.target}:
                self.converged = time.monotonic() - started
                return
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--minute-seconds", type=float, default=60, help="length of a 'minute'")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--conns", type=int, default=8)
    args = parser.parse_args()
    # SIGTERM ends the run like Ctrl-C: the server is stopped and the workspace removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from bench_api import _free_port, ensure_wrk
    from bench_workers import start_api, stop, wait_workers, workspace, wrk_run

    wrk = ensure_wrk()
    root = Path(tempfile.mkdtemp(prefix="nrr-soak-"))
    print(f"workspace in {root}; {args.workers} worker(s), {args.minutes} minute(s)", flush=True)
    server_env = workspace(root, args.accounts, args.trees)
    reader, admin = server_env.pop("READER"), server_env.pop("ADMIN")
    uri = server_env["NRR_TRACKING_URI"]
    versions = ["1", register_version(uri, root, "nrr-churn", seed=5, trees=args.trees)]
    script = lua_mix(root / "mix.lua", root / "one.json", args.accounts)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_api({**os.environ, **server_env}, args.workers, root, port)
    rows: list[dict[str, Any]] = []
    key, old_key = reader, None
    keys_file = server_env["NRR_API_KEYS_PATH"]
    try:
        wait_workers(url, args.workers, proc, api=True)
        pids = sorted(int(p) for p in worker_versions(url))
        print(f"workers {pids}; start RSS {rss_mb(pids):.0f} MB", flush=True)
        middle = args.minutes // 2
        for minute in range(args.minutes):
            note = ""
            revoker = None
            if minute == middle:
                made = subprocess.run(
                    [str(NRR), "apikey", "create", "--role", "reader", "--keys-file", keys_file],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                old_key, key = key, made.stdout.strip().splitlines()[-1]
                took = accepted_everywhere(url, key, args.workers, 200, timeout=15)
                note = f"new key on every worker in {took:.1f} s"
                old_id = old_key.split("_")[1]
                revoker = threading.Timer(
                    args.minute_seconds / 3,
                    lambda kid=old_id: subprocess.run(
                        [str(NRR), "apikey", "revoke", kid, "--keys-file", keys_file],
                        capture_output=True,
                        check=True,
                    ),
                )
                revoker.start()
            target = versions[(minute + 1) % 2]
            reloader = Reloader(url, admin, uri, target, args.workers, args.minute_seconds / 2)
            reloader.start()
            r = wrk_run(
                wrk, url, seconds=args.minute_seconds, conns=args.conns, key=key, script=script
            )
            reloader.join(timeout=RELOAD_WAIT + 30)
            if revoker is not None:
                revoker.join()
                assert old_key is not None
                took = accepted_everywhere(url, old_key, args.workers, 401, timeout=15)
                note += f"; old key refused everywhere ({took:.1f} s after the check began)"
            live = sorted(int(p) for p in worker_versions(url))
            rows.append(
                {
                    **r,
                    "minute": minute + 1,
                    "reload": reloader.status,
                    "converged": reloader.converged,
                    "rss_mb": rss_mb(live),
                    "pids": live,
                    "note": note,
                }
            )
            print_row(rows[-1])
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)
    summary(rows, pids, args)


def print_row(row: dict[str, Any]) -> None:
    conv = "-" if row["converged"] is None else f"{row['converged']:.1f}"
    print(
        f"minute {row['minute']:>2}: {row['rps']:7.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
        f"p99 {row['p99_ms']:8.2f} ms  errors {row['errors']:>3}  reload {row['reload']:<8} "
        f"all workers on it in {conv:>4} s  RSS {row['rss_mb']:7.1f} MB  {row['note']}",
        flush=True,
    )


def summary(rows: list[dict[str, Any]], pids: list[int], args: argparse.Namespace) -> None:
    if not rows:
        return
    after = rows[1:] or rows
    p99 = [r["p99_ms"] for r in after]
    warm = rows[0]["rss_mb"]
    growth = (rows[-1]["rss_mb"] - warm) / warm
    peak = (max(r["rss_mb"] for r in after) - warm) / warm
    errors = sum(r["errors"] for r in rows)
    requests = sum(r["requests"] for r in rows)
    restarts = sorted({p for r in rows for p in r["pids"]} - set(pids))
    converged = [r["converged"] for r in rows if r["converged"] is not None]
    print(f"\n{args.minutes} minute(s) x {args.minute_seconds:g} s, {args.workers} worker(s)")
    print(f"requests {requests}, errors {errors} (goal 0)")
    print(
        f"p99 per minute after warm-up: min {min(p99):.2f} ms, max {max(p99):.2f} ms, "
        f"max/median {max(p99) / sorted(p99)[len(p99) // 2]:.2f}"
    )
    print(
        f"reloads: {sum(r['reload'] == 'reloaded' for r in rows)}/{len(rows)} reloaded; every "
        f"worker on the new version within {max(converged) if converged else float('nan'):.1f} s "
        "(max)"
    )
    print(
        f"worker RSS: {warm:.0f} MB after minute 1, {rows[-1]['rss_mb']:.0f} MB at the end: "
        f"growth {growth:+.1%} (goal < 5%), peak {peak:+.1%}; worker restarts: {restarts or 'none'}"
    )


if __name__ == "__main__":
    main()
