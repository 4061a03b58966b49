"""API keys (hashed at rest, roles) and the request limits: 401, 403, 413, 422."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_factories import make_app, request_account
from fastapi.testclient import TestClient

from serving.security import KeyFileError, KeyStore, allows, append_key, new_key, read_keys


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app, keys = make_app(tmp_path_factory.mktemp("sec"), max_batch_size=3, max_body_bytes=20_000)
    with TestClient(app) as client:
        yield client, keys


def test_keys_file_holds_no_secret_in_clear(tmp_path: Path) -> None:
    clear, record = new_key("reader")
    path = tmp_path / "keys.json"
    append_key(path, record)
    text = path.read_text()
    assert clear.split("_", 2)[2] not in text and record.hash in text
    assert path.stat().st_mode & 0o077 == 0


def test_key_store_accepts_the_key_and_rejects_any_tampering(tmp_path: Path) -> None:
    clear, record = new_key("admin")
    store = KeyStore([record])
    assert store.role_of(clear) == "admin"
    assert store.role_of(clear[:-1] + ("A" if clear[-1] != "A" else "B")) is None
    assert store.role_of("nrr_deadbeef_secret") is None
    assert store.role_of("garbage") is None and store.role_of(None) is None


def test_malformed_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"key_id": "x"}]}))
    with pytest.raises(KeyFileError, match="malformed"):
        read_keys(path)


def test_admins_may_read_but_readers_may_not_administer() -> None:
    assert allows("admin", "reader") and allows("reader", "reader")
    assert not allows("reader", "admin") and not allows(None, "reader")


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "nrr_00000000_wrong"}])
def test_scores_need_a_valid_key(
    served: tuple[TestClient, dict[str, str]], headers: dict[str, str]
) -> None:
    response = served[0].get("/v1/accounts/acct-001/score", headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_reload_needs_an_admin_key(served: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = served
    assert client.post("/v1/admin/reload", headers={"X-API-Key": keys["reader"]}).status_code == 403
    assert client.post("/v1/admin/reload").status_code == 401


def test_batch_over_the_limit_is_refused(served: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = served
    body = {"accounts": [request_account(f"a{i}") for i in range(4)]}
    response = client.post("/v1/score", json=body, headers={"X-API-Key": keys["reader"]})
    assert response.status_code == 413 and "at most 3" in response.json()["message"]


def test_body_over_the_byte_limit_is_413(served: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = served
    body = {"accounts": [request_account("x" * 100)] * 200}
    response = client.post("/v1/score", json=body, headers={"X-API-Key": keys["reader"]})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def test_body_streamed_without_length_is_still_limited(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = served
    chunks = (b"x" * 10_000 for _ in range(5))
    response = client.post(
        "/v1/score",
        content=chunks,
        headers={"X-API-Key": keys["reader"], "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_unknown_feature_is_a_field_level_422(served: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = served
    account = request_account()
    account["features"]["logins_per_fortnight"] = 3
    response = client.post(
        "/v1/score", json={"accounts": [account]}, headers={"X-API-Key": keys["reader"]}
    )
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["details"]]
    assert "body.accounts.0.features.logins_per_fortnight" in fields


def test_non_numeric_feature_is_a_field_level_422(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = served
    response = client.post(
        "/v1/score",
        json={"accounts": [request_account(mau="lots")]},
        headers={"X-API-Key": keys["reader"]},
    )
    assert response.status_code == 422
    assert any(d["field"].endswith("features.mau") for d in response.json()["details"])


def test_auth_can_be_disabled_for_local_experiments(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, auth_enabled=False)
    with TestClient(app) as client:
        assert client.get("/v1/accounts/acct-001/score").status_code == 200


def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nrr.cli import build_app

    path = tmp_path / "keys.json"
    args = ["apikey", "create", "--role", "admin", "--keys-file", str(path)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    clear = result.stdout.strip().splitlines()[-1]
    assert KeyStore(read_keys(path)).role_of(clear) == "admin"
    assert clear not in path.read_text()
    bad = CliRunner().invoke(
        build_app(), ["apikey", "create", "--role", "root", "--keys-file", str(path)]
    )
    assert bad.exit_code != 0 and len(read_keys(path)) == 1
