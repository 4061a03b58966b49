"""Keys rotate without a restart: `nrr apikey create | list | revoke`, and a running server
picks the keys file's changes up by itself (within seconds) and on POST /v1/admin/reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_factories import history, make_app, write_keys
from fastapi.testclient import TestClient
from test_auth_throttle import Clock, add_legacy, legacy_key, scrypt_calls, wrong  # noqa: F401
from typer.testing import CliRunner

from nrr.cli import build_app
from serving.security import (
    KeyStore,
    StoredKey,
    append_key,
    new_key,
    read_keys,
    remove_key,
)

PICKUP_SECONDS = 15.0  # "within a few seconds", with room for a busy machine


def _eventually(check: Callable[[], bool], timeout: float = PICKUP_SECONDS) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout:.0f} s"
        time.sleep(0.05)
    return time.monotonic() - started


def _ping(client: TestClient | httpx.Client, key: str) -> int:
    return client.get("/v1/ping", headers={"X-API-Key": key}).status_code


# --- the key store ----------------------------------------------------------------------


def test_replaced_records_take_effect_and_keep_the_throttle() -> None:
    old_clear, old = new_key("reader")
    new_clear, new = new_key("admin")
    clock = Clock()
    store = KeyStore([old], key_failures=3, clock=clock)
    for _ in range(3):
        store.authenticate(wrong(old_clear), "10.0.0.1")
    assert store.authenticate(wrong(old_clear), "10.0.0.2").retry_after > 0
    store.replace_records([old, new])
    assert store.role_of(new_clear) == "admin" and store.role_of(old_clear) == "reader"
    # A rotation is no way to reset the failure windows of a key id under attack.
    assert store.authenticate(wrong(old_clear), "10.0.0.3").retry_after > 0
    store.replace_records([new])
    assert store.role_of(old_clear) is None and len(store) == 1


def test_a_proven_legacy_key_stays_proven_across_a_rotation(scrypt_calls: list[int]) -> None:  # noqa: F811
    legacy_clear, legacy_raw = legacy_key()
    legacy = StoredKey(**legacy_raw)  # type: ignore[arg-type]
    store = KeyStore([legacy])
    assert store.role_of(legacy_clear) == "reader" and len(scrypt_calls) == 1
    _, other = new_key("reader")
    store.replace_records([legacy, other])
    assert store.role_of(legacy_clear) == "reader" and len(scrypt_calls) == 1
    store.replace_records([other])
    assert store.role_of(legacy_clear) is None


def test_remove_key_rewrites_the_file_privately(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _, first = new_key("reader", note="crm")
    _, second = new_key("admin")
    append_key(path, first)
    append_key(path, second)
    assert remove_key(path, first.key_id) == first
    assert [r.key_id for r in read_keys(path)] == [second.key_id]
    assert (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(KeyError):
        remove_key(path, first.key_id)


# --- the running app --------------------------------------------------------------------


def test_the_app_picks_up_created_and_revoked_keys_by_itself(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, keys_poll_seconds=0.2)
    path = tmp_path / "keys.json"
    with TestClient(app) as client:
        assert _ping(client, keys["reader"]) == 200
        clear, record = new_key("reader", note="rotated in")
        assert _ping(client, clear) == 401
        append_key(path, record)
        _eventually(lambda: _ping(client, clear) == 200)
        remove_key(path, record.key_id)
        _eventually(lambda: _ping(client, clear) == 401)
        assert _ping(client, keys["reader"]) == 200  # the others never stopped working


def test_reload_rereads_the_keys_file(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, keys_poll_seconds=0)  # no watcher: only the reload
    path = tmp_path / "keys.json"
    admin = {"X-API-Key": keys["admin"]}
    with TestClient(app) as client:
        clear, record = new_key("reader")
        append_key(path, record)
        time.sleep(0.3)
        assert _ping(client, clear) == 401
        body = client.post("/v1/admin/reload", headers=admin).json()
        assert body["api_keys"] == 3 and body["keys_error"] is None
        assert _ping(client, clear) == 200


def test_a_damaged_keys_file_keeps_the_keys_in_force_and_says_so(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, keys_poll_seconds=0.2)
    path = tmp_path / "keys.json"
    with TestClient(app) as client:
        path.write_text('{"keys": [{"key_id": ')  # an editor's half-written file
        time.sleep(0.6)
        assert _ping(client, keys["reader"]) == 200
        body = client.post("/v1/admin/reload", headers={"X-API-Key": keys["admin"]}).json()
        assert body["api_keys"] == 2 and "malformed" in body["keys_error"]
        assert body["status"] == "reloaded"  # the models reloaded all the same


# --- the commands -----------------------------------------------------------------------


def _nrr(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from serving.settings import get_settings

    monkeypatch.chdir(cwd)
    for name in ("NRR_WORKDIR", "NRR_API_KEYS_PATH", "NRR_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(build_app(), args)
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.stdout, result.stderr


def test_apikey_create_list_revoke_in_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _nrr(
        ["apikey", "create", "--role", "reader", "--note", "crm"], tmp_path, monkeypatch
    )
    assert code == 0, err
    clear = out.strip().splitlines()[-1]
    key_id = clear.split("_")[1]
    # The workspace (./mlops by default), never the current folder.
    stored = tmp_path / "mlops" / "api_keys.json"
    assert stored.is_file() and not (tmp_path / "api_keys.json").exists()
    _nrr(["apikey", "create", "--role", "admin"], tmp_path, monkeypatch)

    code, out, err = _nrr(["apikey", "list"], tmp_path, monkeypatch)
    assert code == 0, err
    line = next(row for row in out.splitlines() if row.startswith(key_id))
    assert "reader" in line and "crm" in line and "sha256" in line
    record = json.loads(stored.read_text())["keys"][0]
    secret = clear.split("_", 2)[2]  # token_urlsafe may itself start with or hold "_"
    assert record["hash"] not in out and secret not in out + err
    assert len([row for row in out.splitlines() if row.strip()]) == 3  # header + 2 keys

    code, out, err = _nrr(["apikey", "revoke", "deadbeef"], tmp_path, monkeypatch)
    assert code == 1 and "no key with id 'deadbeef'" in err and key_id in err
    code, out, err = _nrr(["apikey", "revoke", key_id], tmp_path, monkeypatch)
    assert code == 0 and f"revoked reader key {key_id}" in err
    assert key_id not in {r.key_id for r in read_keys(stored)} and len(read_keys(stored)) == 1


def test_apikey_list_of_a_missing_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _nrr(["apikey", "list", "--workdir", "w"], tmp_path, monkeypatch)
    assert code == 0 and "no API keys" in err and "no such file" in err


def test_nrr_serve_accepts_a_key_created_after_start(tmp_path: Path) -> None:
    """The README flow on a real server: create and revoke while it runs, no restart."""
    snaps = tmp_path / "snapshots.parquet"
    history().to_parquet(snaps)
    path = tmp_path / "keys.json"
    write_keys(path)
    from test_startup import _first_answer, _free_port, _stop

    port = _free_port()
    env = {
        **os.environ,
        "NRR_SNAPSHOTS_PATH": str(snaps),
        "NRR_API_KEYS_PATH": str(path),
        "NRR_USE_REGISTRY": "false",
    }
    cmd = [sys.executable, "-m", "nrr.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd + ["--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _first_answer(url, proc, timeout=60)
        created = subprocess.run(
            [sys.executable, "-m", "nrr.cli", "apikey", "create", "--role", "reader"]
            + ["--keys-file", str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        clear = created.stdout.strip().splitlines()[-1]
        with httpx.Client(base_url=url, timeout=5) as client:
            took = _eventually(lambda: _ping(client, clear) == 200)
            assert took < PICKUP_SECONDS
            subprocess.run(
                [sys.executable, "-m", "nrr.cli", "apikey", "revoke", clear.split("_")[1]]
                + ["--keys-file", str(path)],
                env=env,
                capture_output=True,
                check=True,
            )
            _eventually(lambda: _ping(client, clear) == 401)
    finally:
        assert _stop(proc) < 5
