"""One renewal rule for `nrr renewals`, `nrr score` and the API: threshold and owners.

High risk is a high-risk band or a churn probability strictly above
`renewals.churn_probability_high` (rules.yaml: "above"), so a probability exactly at the
threshold raises no alert; a missing, empty or whitespace-only owner is unowned. Each path
is checked on its own output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from api_factories import make_app
from fastapi.testclient import TestClient
from rules_factories import AS_OF, default_config, signal_row

from models.rules.health import HealthNormaliser, score_health
from models.rules.renewals import renewal_calendar
from serving.registry_client import ModelBundle
from serving.scoring import score_snapshots

CONFIG = default_config()
THRESHOLD = CONFIG.renewals.churn_probability_high
ABOVE = THRESHOLD + 1e-6
OWNERS: list[str | None] = ["kim", "", "   ", None]
EXPECTED_OWNER = ["kim", None, None, None]
EXPECTED_UNOWNED = [False, True, True, True]


def _snapshots() -> pd.DataFrame:
    """Four healthy accounts renewing in 20 days, one per kind of owner."""
    good = signal_row(CONFIG, "good")
    frame = pd.DataFrame([good] * len(OWNERS))
    frame.insert(0, "account_id", pd.array([f"a{i}" for i in range(len(OWNERS))], dtype="string"))
    frame.insert(1, "as_of", pd.to_datetime([AS_OF] * len(OWNERS)))
    frame["csm_owner"] = pd.array(OWNERS, dtype="string")
    frame["renewal_at"] = AS_OF + pd.Timedelta(days=20)
    frame["arr"] = 1000.0
    return frame


def _constant_bundle(p: float) -> ModelBundle:
    """No models; the rules fallback maps every health score to churn probability p."""
    flat = {"kind": "score_to_probability", "thresholds": [0.0, 100.0], "decreasing": True}
    up = {"kind": "score_to_probability", "thresholds": [0.0, 100.0], "decreasing": False}
    return ModelBundle(
        fallback_maps={
            "churn": {**flat, "probabilities": [p, p]},
            "expansion": {**up, "probabilities": [0.1, 0.1]},
        },
        fallback_reason="registry disabled by settings (NRR_USE_REGISTRY)",
    )


def test_the_accounts_are_healthy_so_only_the_probability_can_make_them_high_risk() -> None:
    snaps = _snapshots()
    health = score_health(
        snaps, config=CONFIG, normaliser=HealthNormaliser.fit(snaps, config=CONFIG)
    )
    assert not health["health_band"].isin(CONFIG.renewals.high_risk_bands).any()


# --- the CLI path: `nrr renewals` -----------------------------------------------------------


def _cli_calendar(p: float) -> pd.DataFrame:
    snaps = _snapshots()
    health = score_health(
        snaps, config=CONFIG, normaliser=HealthNormaliser.fit(snaps, config=CONFIG)
    )
    return renewal_calendar(
        snaps,
        as_of=AS_OF,
        within_days=90,
        health=health,
        churn_probability=pd.Series(p, index=snaps.index),
        config=CONFIG,
    ).set_index("account_id")


@pytest.mark.parametrize(("p", "alert"), [(THRESHOLD, None), (ABOVE, 30)])
def test_cli_alerts_only_above_the_threshold(p: float, alert: int | None) -> None:
    cal = _cli_calendar(p)
    assert list(cal["high_risk"]) == [alert is not None] * len(OWNERS)
    assert [None if pd.isna(v) else int(v) for v in cal["alert_days"]] == [alert] * len(OWNERS)


def test_cli_reads_blank_and_whitespace_owners_as_unowned() -> None:
    cal = _cli_calendar(THRESHOLD).loc[[f"a{i}" for i in range(len(OWNERS))]]
    assert list(cal["unowned"]) == EXPECTED_UNOWNED
    assert [None if pd.isna(v) else v for v in cal["csm_owner"]] == EXPECTED_OWNER


def test_nrr_renewals_command_shows_blank_and_whitespace_owners_as_unowned(
    tmp_path: Path,
) -> None:
    from rules_factories import write_tiny_company
    from typer.testing import CliRunner

    from nrr.cli import build_app

    data = tmp_path / "data"
    write_tiny_company(data)
    accounts = pd.read_parquet(data / "accounts.parquet")
    # x: empty, y: missing (as written), z: whitespace only
    accounts["csm_owner"] = pd.array(["", None, "   "], dtype="string")
    accounts.to_parquet(data / "accounts.parquet", index=False)
    result = CliRunner().invoke(
        build_app(), ["renewals", "--data", str(data), "--within", "400"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    # x and z hold committed terms; y is month-to-month, so no renewal (the monthly view)
    assert result.output.count("unowned") == 2


# --- the API path: GET /v1/renewals, the score's renewal, the worklist -------------------


@pytest.fixture(scope="module", params=[THRESHOLD, ABOVE], ids=["at", "above"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, str], float]]:
    folder = tmp_path_factory.mktemp("renewals")
    _snapshots().to_parquet(folder / "snapshots.parquet")
    app, keys = make_app(folder, _constant_bundle(request.param))
    with TestClient(app) as client:
        yield client, keys, request.param


def _get(served: tuple[TestClient, dict[str, str], float], url: str) -> Any:
    client, keys, _ = served
    response = client.get(url, headers={"X-API-Key": keys["reader"]})
    assert response.status_code == 200, response.text
    return response.json()


def test_api_renewals_alert_only_above_the_threshold(
    served: tuple[TestClient, dict[str, str], float],
) -> None:
    p = served[2]
    items = {i["account_id"]: i for i in _get(served, "/v1/renewals?within_days=90")["items"]}
    assert sorted(items) == [f"a{i}" for i in range(len(OWNERS))]
    above = p > THRESHOLD
    for item in items.values():
        assert item["churn_probability"] == pytest.approx(p, abs=0)
        assert item["high_risk"] is above
        assert item["alert"] == ("30 days" if above else None)


def test_api_score_renewal_alerts_only_above_the_threshold(
    served: tuple[TestClient, dict[str, str], float],
) -> None:
    above = served[2] > THRESHOLD
    renewal = _get(served, "/v1/accounts/a0/score")["renewal"]
    assert renewal["high_risk"] is above
    assert renewal["alert"] == ("30 days" if above else None)
    assert renewal["days_to_renewal"] == 20


def test_api_reads_blank_and_whitespace_owners_as_unowned(
    served: tuple[TestClient, dict[str, str], float],
) -> None:
    ids = [f"a{i}" for i in range(len(OWNERS))]
    items = {i["account_id"]: i for i in _get(served, "/v1/renewals?within_days=90")["items"]}
    assert [items[a]["unowned"] for a in ids] == EXPECTED_UNOWNED
    assert [items[a]["csm_owner"] for a in ids] == EXPECTED_OWNER
    scores = [_get(served, f"/v1/accounts/{a}/score")["renewal"] for a in ids]
    assert [s["unowned"] for s in scores] == EXPECTED_UNOWNED
    worklist = {i["account_id"]: i for i in _get(served, "/v1/accounts")["items"]}
    assert [worklist[a]["csm_owner"] for a in ids] == EXPECTED_OWNER
    assert [i["account_id"] for i in _get(served, "/v1/accounts?owner=kim")["items"]] == ["a0"]


def test_api_renewal_fields_equal_the_cli_calendar(
    served: tuple[TestClient, dict[str, str], float],
) -> None:
    cal = _cli_calendar(served[2])
    for item in _get(served, "/v1/renewals?within_days=90")["items"]:
        row = cal.loc[item["account_id"]]
        assert item["days_to_renewal"] == row["days_left"]
        assert item["high_risk"] is bool(row["high_risk"])
        alert = None if pd.isna(row["alert_days"]) else f"{row['alert_days']} days"
        assert item["alert"] == alert
        assert item["unowned"] is bool(row["unowned"])


def test_request_owner_blank_or_whitespace_is_unowned(
    served: tuple[TestClient, dict[str, str], float],
) -> None:
    client, keys, _ = served
    accounts = [
        {
            "account_id": f"r{i}",
            "as_of": "2026-03-01T00:00:00",
            "csm_owner": owner,
            "renewal_at": "2026-03-21T00:00:00",
            "features": {},
        }
        for i, owner in enumerate(OWNERS)
    ]
    response = client.post(
        "/v1/score", json={"accounts": accounts}, headers={"X-API-Key": keys["reader"]}
    )
    assert response.status_code == 200, response.text
    renewals = [s["renewal"] for s in response.json()["scores"]]
    assert [r["unowned"] for r in renewals] == EXPECTED_UNOWNED
    assert [r["csm_owner"] for r in renewals] == EXPECTED_OWNER


# --- the batch path: `nrr score` ---------------------------------------------------------


@pytest.mark.parametrize(("p", "alert"), [(THRESHOLD, None), (ABOVE, "30 days")])
def test_batch_scores_alert_only_above_the_threshold(p: float, alert: str | None) -> None:
    table = score_snapshots(_snapshots(), bundle=_constant_bundle(p), rules=CONFIG, drivers_k=0)
    assert [None if pd.isna(v) else v for v in table["renewal_alert"]] == [alert] * len(OWNERS)
    assert (table["days_to_renewal"] == 20).all()
