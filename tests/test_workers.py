"""`nrr serve --workers N`: one port, metrics summed over workers, every worker following a
reload, a promotion and a new API key, readiness per worker, and all gone on SIGTERM.

The server runs as a subprocess over a tiny SQLite registry (tiny LightGBM models registered
as champions). Each worker is reached on a keep-alive connection of its own: a connection
stays with the worker that accepted it, and /readyz says which one that is.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from api_factories import AS_OF, history, snapshot_rows, tiny_model, write_keys
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.metrics import sweep_dead_workers
from serving.registry_client import ModelBundle
from serving.replicas import (
    GENERATION_FILE,
    RUN_DIR_ENV,
    bump_generation,
    prepare_run_dir,
    read_generation,
    remove_run_dir,
)
from serving.settings import ServingSettings

NRR = Path(sys.executable).parent / "nrr"
WORKERS = 2
SYNC_SECONDS = 0.5
POLL_SECONDS = 2.0
# The bound the runbook states is sync (+ poll for a promotion) + one load; a tiny model's
# load takes well under a second on an idle machine, 10 s leaves room for a busy one.
LOAD_ALLOWANCE = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _register(uri: str, root: Path, name: str, seed: int) -> str:
    """Register a tiny model as a new version of `name` and point the champion alias at it."""
    from mlflow import MlflowClient

    folder = root / f"{name}-{seed}"
    tiny_model("churned" if "churn" in name else "expanded", seed=seed).save(folder)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("t")
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment("t", artifact_location=(root / "art").as_uri())
    )
    run = client.create_run(exp_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "champion", version.version)
    return str(version.version)


class Server:
    """A running `nrr serve --workers N` and the paths it serves."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = root / "ws"
        self.workdir.mkdir()
        self.uri = f"sqlite:///{self.workdir / 'mlflow.db'}"
        self.snapshots = root / "snapshots.parquet"
        self.keys_file = root / "keys.json"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        history().to_parquet(self.snapshots)
        self.keys = write_keys(self.keys_file)
        port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("NRR_", "MLFLOW_"))},
            "NRR_SNAPSHOTS_PATH": str(self.snapshots),
            "NRR_API_KEYS_PATH": str(self.keys_file),
            "NRR_REPLICA_SYNC_SECONDS": str(SYNC_SECONDS),
            "NRR_MODEL_POLL_SECONDS": str(POLL_SECONDS),
        }
        cmd = [str(NRR), "serve", "--port", str(port), "--workers", str(WORKERS)]
        cmd += ["--workdir", str(self.workdir), "--log-level", "warning"]
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> float:
        """SIGTERM; seconds until the supervisor is gone (killed after 30 s: a failure)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("SIGTERM did not stop nrr serve within 30 s") from None
        return time.monotonic() - started

    def per_worker(self, timeout: float = 60.0) -> dict[int, httpx.Client]:
        """One keep-alive connection per worker, keyed by the pid its /readyz names."""
        assert self.proc is not None
        clients: dict[int, httpx.Client] = {}
        deadline = time.monotonic() + timeout
        while len(clients) < WORKERS:
            assert self.proc.poll() is None, "server exited: " + self._stderr()
            assert time.monotonic() < deadline, f"reached workers {sorted(clients)} only"
            client = httpx.Client(base_url=self.url, timeout=10)
            try:
                pid = client.get("/readyz").json()["worker_pid"]
            except httpx.TransportError:
                client.close()
                time.sleep(0.2)
                continue
            if pid in clients:
                client.close()
            else:
                clients[pid] = client
        return clients

    def _stderr(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-2000:]


def _close(clients: dict[int, httpx.Client]) -> None:
    for client in clients.values():
        client.close()


def _readiness(timeout: float, done: Callable[[dict[int, dict[str, Any]]], bool], server: Server):
    """Every worker's /readyz until `done` holds for them; (bodies, seconds it took)."""
    started = time.monotonic()
    while True:
        clients = server.per_worker()
        try:
            bodies = {pid: c.get("/readyz").json() for pid, c in clients.items()}
        finally:
            _close(clients)
        elapsed = time.monotonic() - started
        if done(bodies):
            return bodies, elapsed
        assert elapsed < timeout, f"not within {timeout:.0f} s: {bodies}"
        time.sleep(0.2)


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels` (the exposition text parsed
    here, not by prometheus_client's own parser)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.registered = {  # type: ignore[attr-defined]
        "churn": _register(srv.uri, tmp_path, "nrr-churn", seed=0),
        "expansion": _register(srv.uri, tmp_path, "nrr-expansion", seed=1),
    }
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


@pytest.mark.slow  # two worker processes over a real registry: ~20 s idle, a minute busy
def test_workers_share_metrics_reloads_promotions_and_keys(server: Server) -> None:
    ready, _ = _readiness(
        120, lambda b: all(x["status"] == "ready" for x in b.values()) and len(b) == WORKERS, server
    )
    pids = sorted(ready)
    assert len(pids) == WORKERS and all(pid != server.proc.pid for pid in pids)  # type: ignore[union-attr]
    for body in ready.values():  # readiness per worker: its own pid, versions and accounts
        assert body["model_versions"] == {"churn": "1", "expansion": "1"}
        assert body["accounts"] == 12 and body["generation"] == 0

    # Metrics: requests sent to each worker on its own connection, counted once in the sum.
    reader = {"X-API-Key": server.keys["reader"]}
    sent = {pid: 7 + 5 * i for i, pid in enumerate(pids)}
    clients = server.per_worker()
    try:
        before = _metric(
            clients[pids[0]].get("/metrics").text, "nrr_http_requests_total", route="/v1/ping"
        )
        for pid, n in sent.items():
            for _ in range(n):
                assert clients[pid].get("/v1/ping", headers=reader).status_code == 200
        for pid in pids:  # whichever worker answers /metrics, it reports the sum
            text = clients[pid].get("/metrics").text
            pings = _metric(text, "nrr_http_requests_total", route="/v1/ping", status="200")
            assert pings - before == sum(sent.values()), text
            for other in pids:  # each worker's served versions, per pid
                assert (
                    _metric(text, "nrr_model_info", pid=str(other), model="churn", version="1") == 1
                )
    finally:
        _close(clients)

    # A reload reaches one worker; the others follow (new snapshots: a new as_of).
    later = AS_OF + pd.DateOffset(months=1)
    newer = snapshot_rows(12, seed=5, as_of=later)
    pd.concat([history(), newer], ignore_index=True).to_parquet(server.snapshots)
    admin = httpx.post(
        f"{server.url}/v1/admin/reload", headers={"X-API-Key": server.keys["admin"]}, timeout=60
    )
    assert admin.status_code == 200 and admin.json()["status"] == "reloaded", admin.text
    assert admin.json()["serving"]["generation"] == 1
    bodies, took = _readiness(
        SYNC_SECONDS + LOAD_ALLOWANCE,
        # both: a worker may read the new file before it records the generation it follows
        lambda b: all(
            x["snapshots_as_of"].startswith(str(later.date())) and x["generation"] == 1
            for x in b.values()
        ),
        server,
    )
    assert {b["generation"] for b in bodies.values()} == {1}
    print(f"reload followed by every worker within {took:.1f} s")

    # A promotion without any reload: the alias poll finds it, every worker serves it.
    promoted = _register(server.uri, server.root, "nrr-churn", seed=7)
    assert promoted == "2"
    bodies, took = _readiness(
        POLL_SECONDS + SYNC_SECONDS + LOAD_ALLOWANCE,
        # a worker's own alias poll may load the new version before it records the
        # generation the first finder announced: wait for both
        lambda b: all(
            x["model_versions"]["churn"] == "2" and x["generation"] == 2 for x in b.values()
        ),
        server,
    )
    assert {b["generation"] for b in bodies.values()} == {2}
    print(f"promotion served by every worker within {took:.1f} s")

    # A key created with the CLI: accepted by every worker, no restart, no reload.
    created = subprocess.run(
        [str(NRR), "apikey", "create", "--role", "reader", "--keys-file", str(server.keys_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    new_key = {"X-API-Key": created.stdout.strip().splitlines()[-1]}
    deadline = time.monotonic() + 15
    accepted: set[int] = set()
    while accepted != set(pids):
        assert time.monotonic() < deadline, f"new key accepted by {accepted} of {pids}"
        clients = server.per_worker()
        try:
            accepted |= {
                p
                for p, c in clients.items()
                if c.get("/v1/ping", headers=new_key).status_code == 200
            }
        finally:
            _close(clients)
        time.sleep(0.2)

    # SIGTERM: the supervisor and every worker gone within 5 s.
    assert server.stop() < 5
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- in-process: the generation file and the follow logic -------------------------------


def test_generation_bumps_under_the_lock_and_skips_a_known_promotion(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert read_generation(run) == {"generation": 0, "versions": None}  # no file yet
    (run / GENERATION_FILE).write_text("{half a file")
    assert read_generation(run)["generation"] == 0  # a damaged file never crashes a worker
    assert bump_generation(run, {"churn": "1"}, "reload") == 1
    assert bump_generation(run, {"churn": "2"}, "promotion") == 2
    known: dict[str, str | None] = {"churn": "2"}
    assert bump_generation(run, known, "promotion", unless=lambda c: c["versions"] == known) is None
    data = read_generation(run)
    assert data["generation"] == 2 and data["versions"] == known and data["pid"] == os.getpid()


def test_dead_workers_lose_their_live_gauges_only(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = int(dead.stdout)
    for pid in (gone, os.getpid()):
        (tmp_path / f"gauge_liveall_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    assert sweep_dead_workers(tmp_path) == [gone]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [f"counter_{gone}.db", f"counter_{os.getpid()}.db", f"gauge_liveall_{os.getpid()}.db"]
    )


def test_a_worker_follows_another_workers_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two apps in one process sharing a run folder: a reload of one reaches the other."""
    history().to_parquet(tmp_path / "snapshots.parquet")
    keys = write_keys(tmp_path / "keys.json")
    settings = ServingSettings(
        snapshots_path=tmp_path / "snapshots.parquet",
        api_keys_path=tmp_path / "keys.json",
        use_registry=False,
        startup_wait_seconds=60,
        replica_sync_seconds=0.1,
        model_poll_seconds=0,
    )
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    run_dir = prepare_run_dir(settings, workers=1)
    loads = {"n": 0}

    def loader(_s: ServingSettings) -> ModelBundle:
        loads["n"] += 1
        return ModelBundle(
            churn=tiny_model("churned"),
            expansion=tiny_model("expanded", seed=1),
            versions={"churn": str(loads["n"]), "expansion": "1"},
        )

    try:
        a = TestClient(create_app(settings, bundle_loader=loader))
        b = TestClient(create_app(settings, bundle_loader=loader))
        with a, b:
            assert a.get("/readyz").json()["generation"] == 0
            reloaded = a.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]}).json()
            assert reloaded["status"] == "reloaded" and reloaded["serving"]["generation"] == 1
            served_by_a = reloaded["serving"]["model_versions"]["churn"]
            deadline = time.monotonic() + 15
            while (body := b.get("/readyz").json())["generation"] != 1:
                assert time.monotonic() < deadline, body
                time.sleep(0.05)
            # b loaded anew (a fourth load: two first loads, a's reload, b's follow)
            assert loads["n"] == 4 and body["model_versions"]["churn"] != "1"
            assert served_by_a == "3" and body["model_versions"]["churn"] == "4"
            assert a.get("/readyz").json()["generation"] == 1  # a does not reload twice
            assert loads["n"] == 4
    finally:
        remove_run_dir(run_dir)
    assert RUN_DIR_ENV not in os.environ and not run_dir.exists()


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_serve_refuses_a_wrong_worker_count_in_one_line(tmp_path: Path, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NRR_", "MLFLOW_"))}
    env["COLUMNS"] = "1000"
    done = subprocess.run(
        [str(NRR), "serve", "--port", "0", "--workers", value],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--workers" in done.stderr
    assert not list(tmp_path.iterdir())
