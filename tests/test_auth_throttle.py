"""Key checks an unauthenticated request cannot buy CPU with: SHA-256 records, legacy scrypt
records verified once, failures throttled (429 + Retry-After), counted and logged."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_factories import make_app
from fastapi.testclient import TestClient

import serving.security as security
from serving.security import (
    FailureWindow,
    KeyStore,
    StoredKey,
    Tarpit,
    TokenBucket,
    new_key,
    read_keys,
)


def legacy_key(role: str = "reader") -> tuple[str, dict[str, str]]:
    """A key and its record exactly as `nrr apikey create` wrote them before SHA-256."""
    key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    record = {
        "key_id": key_id,
        "role": role,
        "salt": salt.hex(),
        "hash": digest.hex(),
        "created_at": "2025-06-01T09:00:00+00:00",
        "note": "written by the scrypt version",
    }
    return f"nrr_{key_id}_{secret}", record


def add_legacy(path: Path, record: dict[str, str]) -> None:
    raw = json.loads(path.read_text()) if path.exists() else {"keys": []}
    raw["keys"].append(record)
    path.write_text(json.dumps(raw, indent=2))


def wrong(key: str) -> str:
    """The same key id with another (well-formed) secret."""
    prefix, key_id, _ = key.split("_", 2)
    return f"{prefix}_{key_id}_{secrets.token_urlsafe(32)}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every scrypt run of the key store (the slow path)."""
    calls: list[int] = []
    real: Callable[[str, bytes], bytes] = security._scrypt

    def counted(secret: str, salt: bytes) -> bytes:
        calls.append(1)
        return real(secret, salt)

    monkeypatch.setattr(security, "_scrypt", counted)
    return calls


def legacy_store(tmp_path: Path, **options: Any) -> tuple[KeyStore, str]:
    clear, record = legacy_key()
    add_legacy(tmp_path / "keys.json", record)
    return KeyStore(read_keys(tmp_path / "keys.json"), **options), clear


# --- storage ---------------------------------------------------------------------------


def test_new_keys_are_sha256_records_and_never_run_scrypt(scrypt_calls: list[int]) -> None:
    clear, record = new_key("reader")
    assert record.scheme == "sha256" and len(bytes.fromhex(record.hash)) == 32
    store = KeyStore([record])
    assert store.role_of(clear) == "reader"
    for _ in range(50):
        assert store.role_of(wrong(clear), "10.0.0.1") is None
    assert scrypt_calls == [] and store.slow_verifications == 0


def test_legacy_key_file_still_works(tmp_path: Path) -> None:
    clear, record = legacy_key("admin")
    add_legacy(tmp_path / "keys.json", record)
    records = read_keys(tmp_path / "keys.json")
    assert records[0].scheme == "scrypt"
    assert KeyStore(records).role_of(clear) == "admin"


def test_unknown_scheme_is_a_clear_error(tmp_path: Path) -> None:
    _, record = new_key("reader")
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{**record.__dict__, "scheme": "md5"}]}))
    with pytest.raises(security.KeyFileError, match="unknown scheme"):
        read_keys(path)


# --- the slow path is taken once, not again and again ----------------------------------


def test_legacy_key_is_verified_once_then_wrong_secrets_cost_no_scrypt(
    tmp_path: Path, scrypt_calls: list[int]
) -> None:
    store, clear = legacy_store(tmp_path)
    assert store.needs_slow_path(clear)
    assert store.role_of(clear, "10.0.0.1") == "reader"
    assert len(scrypt_calls) == 1 and not store.needs_slow_path(wrong(clear))
    for i in range(200):
        assert store.role_of(wrong(clear), f"10.0.{i}.1") is None
    assert store.role_of(clear, "10.0.0.1") == "reader"
    assert len(scrypt_calls) == 1


def test_wrong_secrets_for_an_unproven_legacy_id_run_scrypt_a_bounded_number_of_times(
    tmp_path: Path, scrypt_calls: list[int]
) -> None:
    clock = Clock()
    store, clear = legacy_store(tmp_path, clock=clock, key_failures=5)
    # From one client and from 100 different ones: the key id's budget caps both.
    verdicts = [store.authenticate(wrong(clear), f"10.1.{i}.9") for i in range(100)]
    assert len(scrypt_calls) == 5
    assert verdicts[-1].reason == "not_verified" and verdicts[-1].retry_after > 0
    assert verdicts[-1].throttled == "key"
    clock.now += 61  # a new window: another five, not a hundred
    for i in range(100):
        store.authenticate(wrong(clear), f"10.2.{i}.9")
    assert len(scrypt_calls) == 10


def test_the_global_scrypt_budget_caps_many_legacy_ids(
    tmp_path: Path, scrypt_calls: list[int]
) -> None:
    clock = Clock()
    keys = [legacy_key() for _ in range(6)]
    for _, record in keys:
        add_legacy(tmp_path / "keys.json", record)
    store = KeyStore(
        read_keys(tmp_path / "keys.json"), clock=clock, slow_per_second=1.0, slow_burst=3
    )
    verdicts = [
        store.authenticate(wrong(clear), f"10.3.{i}.1") for i, (clear, _) in enumerate(keys)
    ]
    assert len(scrypt_calls) == 3
    assert [v.throttled for v in verdicts[3:]] == ["slow_path"] * 3
    assert verdicts[3].retry_after == 1
    clock.now += 1.0
    assert store.authenticate(keys[0][0], "10.3.9.1").role == "reader"
    assert len(scrypt_calls) == 4


# --- throttling --------------------------------------------------------------------------


def test_failures_past_the_limit_get_429_with_retry_after_but_a_correct_key_passes() -> None:
    clock = Clock()
    clear, record = new_key("reader")
    store = KeyStore([record], clock=clock, client_failures=3, key_failures=100)
    codes = [store.authenticate(wrong(clear), "10.4.0.1").retry_after for _ in range(5)]
    assert codes[:3] == [0, 0, 0] and codes[3] == 60 and codes[4] == 60
    assert store.authenticate(wrong(clear), "10.4.0.1").throttled == "client"
    # Not a lockout: the owner of the key (even behind the same address) still gets in.
    assert store.authenticate(clear, "10.4.0.1").role == "reader"
    # Another client is not affected by this one's failures.
    assert store.authenticate(wrong(clear), "10.4.0.2").retry_after == 0
    clock.now += 30
    assert store.authenticate(wrong(clear), "10.4.0.1").retry_after == 30
    clock.now += 30
    assert store.authenticate(wrong(clear), "10.4.0.1").retry_after == 0


def test_failures_for_one_key_id_are_throttled_across_clients() -> None:
    clear, record = new_key("reader")
    store = KeyStore([record], client_failures=100, key_failures=4)
    verdicts = [store.authenticate(wrong(clear), f"10.5.{i}.1") for i in range(6)]
    assert [v.throttled for v in verdicts] == ["", "", "", "", "key", "key"]
    assert store.authenticate(clear, "10.5.0.1").role == "reader"


def test_malformed_and_missing_keys_are_refused_but_not_throttled() -> None:
    store = KeyStore([new_key("reader")[1]], client_failures=2)
    for _ in range(10):
        assert store.authenticate("SCHEMATHESIS-INVALID-VALUE", "10.6.0.1").retry_after == 0
        assert store.authenticate(None, "10.6.0.1").reason == "missing"
    assert store.authenticate("nrr_abc_" + "x" * 500, "10.6.0.1").reason == "malformed"


def test_failure_window_memory_is_bounded() -> None:
    window = FailureWindow(limit=2, window=60, max_subjects=100)
    for i in range(10_000):
        window.fail(f"client-{i}", now=float(i) / 1000)
    assert len(window) <= 100
    # The newest clients are the ones remembered.
    window.fail("client-9999", now=10.0)
    assert window.retry_after("client-9999", now=10.0) > 0


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
    assert bucket.take(0.0) == 0 and bucket.take(0.0) == 0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0


def test_tarpit_holds_without_a_thread_and_bounds_what_it_holds() -> None:
    async def scenario() -> tuple[float, float, int]:
        tarpit = Tarpit(delay=0.2, max_held=2)
        start = time.perf_counter()
        await asyncio.gather(*(tarpit.hold(60) for _ in range(2)))
        held = time.perf_counter() - start
        # Two already held: the third is answered at once.
        first = asyncio.ensure_future(asyncio.gather(tarpit.hold(60), tarpit.hold(60)))
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        await tarpit.hold(60)
        immediate = time.perf_counter() - start
        await first
        return held, immediate, tarpit.held

    held, immediate, left = asyncio.run(scenario())
    assert 0.18 < held < 0.5 and immediate < 0.05 and left == 0


# --- logs ---------------------------------------------------------------------------------


def test_failures_are_logged_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    clear, record = new_key("reader")
    store = KeyStore([record], client_failures=3)
    attempts = [wrong(clear) for _ in range(5)]
    with caplog.at_level(logging.INFO, logger="serving.security"):
        for attempt in attempts:
            store.authenticate(attempt, "10.7.0.1")
        store.authenticate("nrr_feedbeef_" + "s" * 43, "10.7.0.1")
    text = caplog.text
    assert record.key_id in text and "10.7.0.1" in text
    assert not any(a.split("_", 2)[2] in text for a in attempts)
    assert "feedbeef" not in text  # an unknown id is attacker text, not logged
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 failed attempts from client" in warnings[0].getMessage()
    # Once throttled a client's failures are counted in /metrics, not logged one by one.
    assert sum("refused" in r.getMessage() for r in caplog.records) == 3


# --- through the API ----------------------------------------------------------------------


@pytest.fixture
def served_with_legacy(
    tmp_path: Path,
) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    app, keys = make_app(tmp_path)
    legacy_clear, record = legacy_key("reader")
    add_legacy(tmp_path / "keys.json", record)
    with TestClient(app) as client:
        app.state.keys.tarpit.delay = 0.0  # hold nothing: the tests measure answers, not time
        yield client, keys, legacy_clear


def _metric(client: TestClient, name: str, label: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{label}}}"):
            return float(line.split()[-1])
    return 0.0


def test_api_accepts_a_legacy_key_and_counts_its_single_scrypt_check(
    served_with_legacy: tuple[TestClient, dict[str, str], str], scrypt_calls: list[int]
) -> None:
    client, keys, legacy = served_with_legacy
    for _ in range(3):
        response = client.get("/v1/accounts/acct-001/score", headers={"X-API-Key": legacy})
        assert response.status_code == 200
    assert len(scrypt_calls) == 1
    assert _metric(client, "nrr_auth_legacy_checks_total", 'outcome="ok"') == 1


def test_api_throttles_wrong_secrets_with_429_retry_after_and_counts_them(
    served_with_legacy: tuple[TestClient, dict[str, str], str], scrypt_calls: list[int]
) -> None:
    client, keys, legacy = served_with_legacy
    url = "/v1/accounts/acct-001/score"
    statuses = [
        client.get(url, headers={"X-API-Key": wrong(keys["reader"])}).status_code
        for _ in range(security.KEY_FAILURES + 2)
    ]
    assert statuses[: security.KEY_FAILURES] == [401] * security.KEY_FAILURES
    assert statuses[-1] == 429
    refused = client.get(url, headers={"X-API-Key": wrong(keys["reader"])})
    assert refused.status_code == 429 and refused.json()["error"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # The flood does not lock the key's owner out.
    assert client.get(url, headers={"X-API-Key": keys["reader"]}).status_code == 200
    # A legacy id never proven in this process: throttled without its scrypt check.
    for _ in range(security.KEY_FAILURES + 5):
        client.get(url, headers={"X-API-Key": wrong(legacy)})
    assert len(scrypt_calls) <= security.KEY_FAILURES
    wrong_secrets = _metric(client, "nrr_auth_failures_total", 'reason="wrong_secret"')
    assert wrong_secrets >= security.KEY_FAILURES + 3
    assert _metric(client, "nrr_auth_throttled_total", 'scope="key"') >= 3
    assert _metric(client, "nrr_auth_failures_total", 'reason="not_verified"') >= 1
    assert client.get(url).status_code == 401
    assert _metric(client, "nrr_auth_failures_total", 'reason="missing"') == 1


def test_throttled_answers_are_held_by_the_tarpit(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        app.state.keys = KeyStore(
            read_keys(tmp_path / "keys.json"), client_failures=1, tarpit=Tarpit(delay=0.3)
        )
        headers = {"X-API-Key": wrong(keys["reader"])}
        assert client.get("/v1/ping", headers=headers).status_code == 401
        start = time.perf_counter()
        assert client.get("/v1/ping", headers=headers).status_code == 429
        assert time.perf_counter() - start >= 0.28
        start = time.perf_counter()
        assert client.get("/v1/ping", headers={"X-API-Key": keys["reader"]}).status_code == 200
        assert time.perf_counter() - start < 0.2


def test_openapi_documents_the_429(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    responses = app.openapi()["paths"]["/v1/accounts/{account_id}/score"]["get"]["responses"]
    assert "429" in responses


# --- the CLI --------------------------------------------------------------------------------


def test_apikey_create_hides_the_key_id_and_tells_about_legacy_records(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nrr.cli import build_app

    path = tmp_path / "keys.json"
    legacy, record = legacy_key()
    add_legacy(path, record)
    result = CliRunner().invoke(
        build_app(), ["apikey", "create", "--role", "reader", "--keys-file", str(path)]
    )
    assert result.exit_code == 0, result.output
    clear = result.stdout.strip().splitlines()[-1]
    key_id = clear.split("_", 2)[1]
    said = " ".join(result.stderr.split())  # rich wraps at the terminal width
    assert key_id not in said.replace(" ", "")
    assert "1 older key(s)" in said and "Rotating an API key" in said
    store = KeyStore(read_keys(path))
    assert store.role_of(clear) == "reader" and store.role_of(legacy) == "reader"
    assert [r.scheme for r in read_keys(path)] == ["scrypt", "sha256"]


def test_stored_key_written_by_this_version_reads_back(tmp_path: Path) -> None:
    clear, record = new_key("admin", note="ops")
    security.append_key(tmp_path / "k.json", record)
    assert read_keys(tmp_path / "k.json") == [record]
    assert isinstance(read_keys(tmp_path / "k.json")[0], StoredKey)
