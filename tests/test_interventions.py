"""Interventions and their outcomes (issue 16 part 2): the matched comparison, the contract
table, the API store and the simulated plays. Expected values are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.contract import TABLES
from features.registry import FEATURES
from models.outcomes.config import InterventionSpec
from models.outcomes.interventions import ALL_LEVELS, evaluate_interventions
from models.outcomes.store import append_play, read_plays
from models.revenue.nrr import arr_timeline
from models.workspace import Workspace

T = pd.Timestamp
SPEC = InterventionSpec(
    outcome_days=90, saved_bands=["Thriving", "Healthy"], caliper=0.05, controls_per_treated=1
)
M, LATER = T("2024-01-01"), T("2024-04-01")  # start month; first month start 90 days on
END = T("2024-05-01")


def _timeline(churned: dict[str, str]) -> pd.DataFrame:
    ids = ["T1", "T2", "T3", "H", "C1", "C2", "C3", "C4", "C5", "P"]
    subs = pd.DataFrame(
        {
            "account_id": ids,
            "start_at": T("2023-01-01"),
            "end_at": [T(churned[i]) if i in churned else pd.NaT for i in ids],
            "plan": "Starter",
            "arr": 100.0,
        }
    )
    return arr_timeline(subs, data_end=END, grace_days=30)


def _scores() -> pd.DataFrame:
    rows = [
        # account, month, churn probability, band
        ("T1", M, 0.30, "At risk"),
        ("T2", M, 0.50, "At risk"),
        ("T3", M, 0.70, "Critical"),
        ("H", M, 0.05, "Healthy"),
        ("C1", M, 0.31, "At risk"),
        ("C2", M, 0.49, "At risk"),
        ("C3", M, 0.90, "At risk"),
        ("C4", M, 0.30, "Healthy"),
        ("C5", M, 0.30, "At risk"),
        ("P", M, 0.30, "At risk"),
        ("T1", LATER, 0.10, "Healthy"),
        ("C1", LATER, 0.20, "At risk"),
        ("C5", LATER, 0.10, "Healthy"),
        ("C5", T("2024-02-01"), 0.30, "At risk"),  # its own play's start: nobody to match
        ("P", T("2024-03-01"), 0.30, "At risk"),
    ]
    return pd.DataFrame(rows, columns=["account_id", "as_of", "churn_probability", "health_band"])


def _plays() -> pd.DataFrame:
    rows = [
        ("T1", "call", "2024-01-03 09:00"),
        ("T2", "call", "2024-01-05 09:00"),
        ("T3", "call", "2024-01-02 09:00"),  # Critical: no comparison account at that level
        ("H", "call", "2024-01-02 09:00"),  # Healthy at the start: not at risk
        ("C5", "email", "2024-02-10 09:00"),  # C5 had a play within 90 days: no control
        ("X", "call", "2024-01-02 09:00"),  # no score at the start (no ARR then)
        ("P", "call", "2024-03-01 09:00"),  # outcome after the data
    ]
    frame = pd.DataFrame(rows, columns=["account_id", "play", "started_at"])
    return frame.assign(started_at=pd.to_datetime(frame["started_at"]))


def test_matched_comparison_by_hand() -> None:
    # T2 and C2 churn in February; everyone else keeps ARR
    timeline = _timeline({"T2": "2024-02-15", "C2": "2024-02-20"})
    report = evaluate_interventions(
        _plays(), scores=_scores(), timeline=timeline, spec=SPEC, data_end=END
    )
    # P: outcome after the data; H: healthy; X: no score; T3 and C5: nobody to compare with
    assert (report.pending, report.not_at_risk, report.unscored, report.unmatched) == (1, 1, 1, 2)
    units = report.units.set_index("account_id")
    # T1 -> C1 (0.01 away; C5 is excluded by its own play, C3 and C4 are no match)
    assert units.loc["T1", ["saved", "control_saved", "retained", "control_retained"]].tolist() == [
        True,
        0.0,
        True,
        1.0,
    ]
    # T2 -> C2: both churned
    assert units.loc["T2", ["saved", "control_saved"]].tolist() == [False, 0.0]
    pooled = report.results.set_index(["risk_level", "play"]).loc[(ALL_LEVELS, "call")]
    assert pooled["treated"] == 2
    assert pooled["saved_rate"] == pytest.approx(0.5)
    assert pooled["control_saved_rate"] == pytest.approx(0.0)
    assert pooled["saved_effect"] == pytest.approx(0.5)
    assert pooled["retained_effect"] == pytest.approx(0.0)
    assert pooled["saved_low"] <= 0.5 <= pooled["saved_high"]


def test_no_model_feature_reads_the_interventions_table() -> None:
    # the models must not learn from their own plays: no feature needs the table
    assert "interventions" in TABLES and not TABLES["interventions"].required
    assert not [
        f.name for f in FEATURES if any(n.split(".")[0] == "interventions" for n in f.needs)
    ]


def test_store_round_trip_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "w" / "interventions.jsonl"
    append_play(
        path, {"account_id": "A", "play": "call", "started_at": "2024-01-02T09:00:00+02:00"}
    )
    with path.open("a") as handle:
        handle.write('{"account_id": "B", "pla')  # a crash in the middle of a write
    plays = read_plays(path)
    assert plays["account_id"].tolist() == ["A"]
    assert plays["started_at"].iloc[0] == T("2024-01-02 07:00")  # stored as UTC
    assert read_plays(tmp_path / "absent.jsonl").empty


def _client(tmp_path: Path) -> TestClient:
    from serving.routes_outcomes import router
    from serving.security import KeyStore

    app = FastAPI()
    app.include_router(router)
    workspace = Workspace.resolve(tmp_path / "mlops")
    app.state.settings = SimpleNamespace(auth_enabled=False, workspace=lambda: workspace)
    app.state.keys = KeyStore([])
    return TestClient(app)


def test_post_records_and_get_lists(tmp_path: Path) -> None:
    client = _client(tmp_path)
    body = {"account_id": " ACC1 ", "play": "exec call", "owner": "Ana", "started_at": "2024-01-02"}
    created = client.post("/v1/interventions", json=body)
    assert created.status_code == 200
    assert created.json()["account_id"] == "ACC1"
    assert created.json()["started_at"].startswith("2024-01-02T00:00:00")
    listed = client.get("/v1/interventions").json()["interventions"]
    assert [p["play"] for p in listed] == ["exec call"]
    stored = (tmp_path / "mlops" / "interventions.jsonl").read_text().splitlines()
    assert json.loads(stored[0])["owner"] == "Ana"


def test_plays_that_have_not_started_are_refused_with_409(tmp_path: Path) -> None:
    client = _client(tmp_path)
    for when in ("2999-01-01", "0001-01-01T00:00:00+05:00"):  # future; before year 1 in UTC
        body = {"account_id": "A", "play": "x", "started_at": when}
        refused = client.post("/v1/interventions", json=body)
        assert refused.status_code == 409, when
    assert (
        "future"
        in client.post(
            "/v1/interventions", json={"account_id": "A", "play": "x", "started_at": "2999-01-01"}
        ).json()["detail"]
    )
    assert not (tmp_path / "mlops" / "interventions.jsonl").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"account_id": "A", "started_at": "2024-01-02"},  # no play
        {"account_id": " ", "play": "x", "started_at": "2024-01-02"},
        {"account_id": "A", "play": "x", "started_at": "yesterday"},
        {"account_id": "A", "play": "x", "started_at": "2024-01-02", "extra": 1},
        {"account_id": "A", "play": "x" * 201, "started_at": "2024-01-02"},
    ],
)
def test_bad_plays_are_refused_with_422(tmp_path: Path, body: dict) -> None:
    client = _client(tmp_path)
    assert client.post("/v1/interventions", json=body).status_code == 422
    assert not (tmp_path / "mlops" / "interventions.jsonl").exists()


def test_simulated_plays_have_a_known_effect(tmp_path: Path) -> None:
    from features.simulate import SimulationConfig, write_company
    from features.simulate.plays import PlaysConfig, PlaySim

    plays = PlaysConfig(
        plays=(PlaySim(name="big", health_boost=2.0), PlaySim(name="placebo", health_boost=0.0)),
        treat_share=0.6,
    )
    write_company(tmp_path, SimulationConfig(accounts=150, months=12, seed=2, plays=plays))
    table = pd.read_parquet(tmp_path / "interventions.parquet")
    truth = json.loads((tmp_path / "interventions_truth.json").read_text())["plays"]
    started = pd.to_datetime(table["started_at"])
    assert (started.dt.day == 1).all() and (started.dt.hour == 9).all()
    assert truth["big"]["treated"] + truth["placebo"]["treated"] == len(table)
    assert truth["big"]["true_retention_effect"] > 0.02
    assert abs(truth["placebo"]["true_retention_effect"]) < 0.02
    # without plays the simulator writes no such table (the demo company is unchanged)
    write_company(tmp_path / "none", SimulationConfig(accounts=20, months=3, seed=2))
    assert not (tmp_path / "none" / "interventions.parquet").exists()
    assert np.isfinite(truth["big"]["health_boost"])


def test_report_section_and_outcomes_route(tmp_path: Path) -> None:
    from serving.report_html import interventions_section
    from serving.routes_outcomes import INTERVENTIONS_FILE, outcome_files

    timeline = _timeline({"T2": "2024-02-15", "C2": "2024-02-20"})
    report = evaluate_interventions(
        _plays(), scores=_scores(), timeline=timeline, spec=SPEC, data_end=END
    )
    section = interventions_section(report)
    assert "50% of 2 at-risk accounts" in section.reading  # T1 saved, T2 not (C5 unmatched)
    assert "+50 points" in section.reading
    assert "+50.0 pp" in section.table
    files = outcome_files(None, None, as_of=END, interventions=report)
    (tmp_path / INTERVENTIONS_FILE).write_text(json.dumps(files[INTERVENTIONS_FILE]))
    client = _client(tmp_path)
    client.app.state.settings.report_dir = tmp_path  # type: ignore[attr-defined]
    body = client.get("/v1/interventions/outcomes").json()
    assert body["left_out"] == {
        "outcome_after_data": 1,
        "not_at_risk": 1,
        "no_arr_at_start": 1,
        "no_comparison": 2,
    }
    assert len(body["results"]) == len(report.results)
