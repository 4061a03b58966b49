"""A real `nrr serve` process on a free loopback port, called over HTTP, always terminated."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from api_factories import history, write_keys

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited early"
        try:
            response = httpx.get(f"{url}/readyz", timeout=1.0)
            # 503 "loading" while the first load runs in the background; then its outcome.
            if response.status_code == 200 or response.json().get("status") == "unavailable":
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready in time")


def test_nrr_serve_answers_over_http(tmp_path: Path) -> None:
    snaps = tmp_path / "snapshots.parquet"
    history().to_parquet(snaps)
    keys = write_keys(tmp_path / "keys.json")
    port = _free_port()
    env = {
        **os.environ,
        "NRR_SNAPSHOTS_PATH": str(snaps),
        "NRR_API_KEYS_PATH": str(tmp_path / "keys.json"),
        "NRR_USE_REGISTRY": "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "nrr.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_ready(url, proc)
        assert ready.status_code == 200 and ready.json()["status"] == "fallback"
        assert "registry disabled" in ready.json()["fallback_reason"]
        headers = {"X-API-Key": keys["reader"]}
        score = httpx.get(f"{url}/v1/accounts/acct-004/score", headers=headers, timeout=5)
        assert score.status_code == 200 and score.json()["source"] == "rules"
        assert httpx.get(f"{url}/v1/accounts/acct-004/score", timeout=5).status_code == 401
        assert (
            httpx.get(f"{url}/v1/accounts/none/score", headers=headers, timeout=5).status_code
            == 404
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode is not None


def test_a_truncated_model_file_is_refused_without_killing_the_process(tmp_path: Path) -> None:
    """LightGBM aborts the process (std::terminate) on a model.txt cut inside its trees; the
    loader must refuse such a file with the fallback reason instead (issue 13 acceptance:
    a damaged artifact took every worker down in a restart loop)."""
    from api_factories import tiny_model

    folder = tmp_path / "model"
    tiny_model("churned").save(folder)
    booster = folder / "model.txt"
    data = booster.read_bytes()
    booster.write_bytes(data[: len(data) // 2])
    probe = (
        "import sys; from pathlib import Path\n"
        "from serving.registry_client import ModelLoadError, load_model_folder\n"
        "try:\n"
        f"    load_model_folder(Path({str(folder)!r}))\n"
        "except ModelLoadError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr[-2000:]  # not -6 (abort) nor 0
    assert "model files corrupt" in done.stdout and "truncated" in done.stdout
