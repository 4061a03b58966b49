"""Requests/s of `nrr serve --workers N` for 1, 2 and all cores, against the no-op ceiling.

In one run, all servers up at once (each on its own port), interleaved repeats so a busy
host slows every configuration alike, medians printed. For each worker count:

- bare: a bare ASGI app (a fixed JSON answer) served by uvicorn the same way (same
  workers, uvloop, httptools): the ceiling of the server, loopback and wrk on this host;
- ping: GET /v1/ping of the API (authenticated no-op): the framework's ceiling;
- score: GET /v1/accounts/{id}/score (precomputed, random account ids);
- post: POST /v1/score of one account (predict + drivers of both models).

wrk (one thread) runs on the same host and takes CPU from the workers: on a 2-core host
the "all workers" figure is bounded by wrk's share. Usage:
python benchmarks/bench_workers.py [--duration 5] [--repeats 3] [--accounts 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BARE_BODY = b'{"status":"ok"}'


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The no-op ceiling: a fixed answer, no framework (served by uvicorn like the API)."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": BARE_BODY})


def workspace(root: Path, accounts: int, trees: int) -> dict[str, str]:
    """Snapshots, two registered champions and keys under `root`; the server environment
    and the keys ('reader', 'admin' in the returned dict's env-free entries)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from bench_api import register, synthetic_snapshots, train

    from serving.security import append_key, new_key

    frame = synthetic_snapshots(accounts, seed=0)
    frame.to_parquet(root / "snapshots.parquet")
    churn = train(frame, target="churned", trees=trees, seed=1)
    expansion = train(frame, target="expanded", trees=trees, seed=2)
    uri = register({"nrr-churn": churn, "nrr-expansion": expansion}, root)
    keys = {}
    for role in ("reader", "admin"):
        clear, record = new_key(role)  # type: ignore[arg-type]
        append_key(root / "keys.json", record)
        keys[role] = clear
    from bench_api import request_body

    (root / "one.json").write_text(request_body(frame.head(1)))
    return {
        "NRR_TRACKING_URI": uri,
        "NRR_SNAPSHOTS_PATH": str(root / "snapshots.parquet"),
        "NRR_API_KEYS_PATH": str(root / "keys.json"),
        "READER": keys["reader"],
        "ADMIN": keys["admin"],
    }


def start_api(env: dict[str, str], workers: int, cwd: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "nrr.cli", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)


def start_bare(workers: int, port: int) -> subprocess.Popen[bytes]:
    here = Path(__file__).resolve().parent
    cmd = [sys.executable, "-m", "uvicorn", "bench_workers:bare", "--app-dir", str(here)]
    cmd += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    cmd += ["--no-access-log", "--loop", "auto", "--http", "auto"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def wait_workers(url: str, workers: int, proc: subprocess.Popen[bytes], api: bool) -> None:
    """Until the server answers (the API: /readyz 200 from `workers` distinct workers)."""
    import httpx

    seen: set[int] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {url} exited during start-up")
        try:
            if not api:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            else:
                ready = httpx.get(f"{url}/readyz", timeout=2)
                if ready.status_code == 200 and ready.json()["status"] == "ready":
                    seen.add(ready.json()["worker_pid"])
                    if len(seen) >= workers:
                        return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url}: not ready within 300 s (workers seen: {sorted(seen)})")


def lua_random_ids(path: Path, accounts: int) -> Path:
    """A wrk script asking for random account ids (every one precomputed)."""
    path.write_text(
        "math.randomseed(7)\n"
        "request = function()\n"
        f'  return wrk.format(nil, string.format("/v1/accounts/acct-%05d/score", '
        f"math.random(0, {accounts - 1})))\n"
        "end\n"
    )
    return path


def lua_post(path: Path, body_file: Path) -> Path:
    path.write_text(
        f'local f = io.open("{body_file}", "r")\nwrk.method = "POST"\n'
        'wrk.body = f:read("*a")\nf:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def wrk_run(
    wrk: str, url: str, *, seconds: float, conns: int, key: str | None, script: Path | None
) -> dict[str, float]:
    """Requests/s, p50/p99 (ms) and errors (non-2xx, socket errors) of one wrk run."""
    from bench_api import _pct

    cmd = [wrk, "-t", "1", "-c", str(conns), "-d", f"{seconds:g}s", "--timeout", "10s"]
    cmd += ["--latency"] + (["-H", f"X-API-Key: {key}"] if key else [])
    cmd += ["-s", str(script)] if script else []
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise SystemExit(f"wrk printed no figures for {url}:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(x) for x in sock.groups()) if sock else 0
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _pct(out, "50"),
        "p99_ms": _pct(out, "99"),
        "errors": errors,
        "requests": int(total.group(1)) if total else 0,
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conns", type=int, default=16, help="wrk connections")
    args = parser.parse_args()
    from bench_api import _free_port, ensure_wrk

    wrk = ensure_wrk()
    cores = os.cpu_count() or 1
    counts = sorted({1, min(2, cores), cores})
    root = Path(tempfile.mkdtemp(prefix="nrr-bench-workers-"))
    print(f"cores={cores}; worker counts {counts}; building the workspace in {root}", flush=True)
    env = {**os.environ, **workspace(root, args.accounts, args.trees)}
    reader = env.pop("READER")
    env.pop("ADMIN")
    ids = lua_random_ids(root / "ids.lua", args.accounts)
    post = lua_post(root / "post.lua", root / "one.json")
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[tuple[str, int], str] = {}
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        for n in counts:
            for kind in ("api", "bare"):
                port = _free_port()
                proc = start_api(env, n, root, port) if kind == "api" else start_bare(n, port)
                procs.append(proc)
                urls[(kind, n)] = f"http://127.0.0.1:{port}"
                wait_workers(urls[(kind, n)], n, proc, api=kind == "api")
                print(f"{kind} with {n} worker(s) up on port {port}", flush=True)
        runs: list[tuple[str, str, str | None, Path | None]] = [
            ("bare", "/", None, None),
            ("ping", "/v1/ping", reader, None),
            ("score", "/v1/accounts/acct-00000/score", reader, ids),
            ("post", "/v1/score", reader, post),
        ]
        for repeat in range(args.repeats):
            for n in counts:
                for name, path, key, script in runs:
                    url = urls[("bare" if name == "bare" else "api", n)] + path
                    r = wrk_run(
                        wrk, url, seconds=args.duration, conns=args.conns, key=key, script=script
                    )
                    results.setdefault((name, n), []).append(r)
            print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(root, ignore_errors=True)
    report(results, counts, cores, args)


def report(
    results: dict[tuple[str, int], list[dict[str, float]]],
    counts: list[int],
    cores: int,
    args: argparse.Namespace,
) -> None:
    def med(name: str, n: int, field: str) -> float:
        return statistics.median(r[field] for r in results[(name, n)])

    print(
        f"\nmedians of {args.repeats} wrk runs of {args.duration:g} s, {args.conns} connections, "
        f"1 wrk thread on the same {cores}-core host"
    )
    header = f"{'workers':>8} {'endpoint':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(header + f" {'/ bare':>7} {'/ 1 worker':>10} {'errors':>7}")
    names = {
        "bare": "bare ASGI app (no-op ceiling)",
        "ping": "GET /v1/ping (API no-op)",
        "score": "GET /v1/accounts/{id}/score",
        "post": "POST /v1/score, 1 account",
    }
    for n in counts:
        label = f"{n}" + (" (all)" if n == cores else "")
        for name in names:
            rps = med(name, n, "rps")
            errors = sum(r["errors"] for r in results[(name, n)])
            print(
                f"{label:>8} {names[name]:<34} {rps:9.0f} {med(name, n, 'p50_ms'):8.2f} "
                f"{med(name, n, 'p99_ms'):8.2f} {rps / med('bare', n, 'rps'):7.2f} "
                f"{rps / med(name, 1, 'rps'):10.2f} {errors:7d}"
            )
    print(json.dumps({f"{k[0]}@{k[1]}": v for k, v in results.items()}))


if __name__ == "__main__":
    main()
