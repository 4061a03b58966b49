"""Win-back list: candidates, return labels, the backtested model, reasons and timing
(issue 16 part 4). Expected values are worked out by hand from the frames below."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from contract_frames import valid_frames, write_parquet

from features.load import load_source
from models.outcomes.config import load_outcomes_config
from models.outcomes.reasons import churn_reasons
from models.outcomes.winback import (
    MIN_POSITIVES,
    backtest,
    candidates_at,
    fit_return_model,
    history_rows,
    labelled,
    winback_list,
)

CONFIG = load_outcomes_config()
SPEC = CONFIG.winback
T = pd.Timestamp


def _churns(rows: list[tuple[str, str, str | None, str]]) -> pd.DataFrame:
    """account, churn date, return date, segment."""
    return pd.DataFrame(
        {
            "account_id": pd.array([r[0] for r in rows], dtype="string"),
            "spell": 0,
            "relationship_start": T("2022-01-01"),
            "churn_at": [T(r[1]) for r in rows],
            "churned_arr": 1000.0,
            "tenure_days": 400,
            "returned_at": [T(r[2]) if r[2] else pd.NaT for r in rows],
            "segment": [r[3] for r in rows],
            "icp_fit": "High",
            "name": None,
            "reason": "competitor switch / unknown",
        }
    )


def test_candidates_are_recent_churns_not_back_yet() -> None:
    churns = _churns(
        [
            ("old", "2023-01-01", None, "SMB"),  # churned more than 365 days before
            ("back", "2024-03-01", "2024-05-01", "SMB"),  # returned before the cut
            ("soon", "2024-03-01", "2024-07-15", "SMB"),  # returns 45 days after the cut
            ("late", "2024-03-01", "2024-12-01", "SMB"),  # returns after the horizon
            ("gone", "2024-03-01", None, "SMB"),
        ]
    )
    rows = candidates_at(churns, at=T("2024-06-01"), lookback_days=365)
    assert sorted(rows["account_id"]) == ["gone", "late", "soon"]
    assert (rows["days_since_churn"] == 92).all()
    got = dict(zip(rows["account_id"], labelled(rows, horizon_days=90), strict=True))
    assert got == {"gone": False, "late": False, "soon": True}


def _separable(n: int, seed: int) -> pd.DataFrame:
    """Segment R accounts come back 30 days after each cut; segment N never do."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        churn = T("2022-01-01") + pd.Timedelta(days=int(rng.integers(0, 900)))
        back = churn + pd.Timedelta(days=int(rng.integers(100, 300))) if i % 3 == 0 else None
        rows.append(
            (f"a{i}", str(churn), None if back is None else str(back), "R" if back else "N")
        )
    return _churns(rows)


def test_backtest_auc_on_a_separable_history() -> None:
    churns = _separable(600, seed=0)
    rows = history_rows(churns, spec=SPEC, data_end=T("2025-01-01"))
    assert rows["returned"].sum() >= MIN_POSITIVES
    test = backtest(rows, horizon_days=SPEC.horizon_days)
    assert test is not None
    # segment alone separates returners from the rest, so the held-out ranking is near perfect
    assert test.auc > 0.9
    assert test.auc_low <= test.auc <= test.auc_high
    # every test cut only trusts models fitted on cuts whose labels had closed
    assert test.cuts[0] > f"{rows['cut'].min():%Y-%m-%d}"


def test_too_few_returns_fall_back_to_the_base_rate() -> None:
    churns = _churns([("a", "2024-03-01", "2024-07-01", "SMB"), ("b", "2024-03-01", None, "SMB")])
    rows = candidates_at(churns, at=T("2024-06-01"), lookback_days=365)
    y = labelled(rows, horizon_days=90).to_numpy()
    model = fit_return_model(rows, y)
    assert model.model is None
    assert model.predict(rows).tolist() == [0.5, 0.5]


def test_list_carries_the_reason_matched_approach_and_window() -> None:
    churns = _churns([("a", "2024-05-01", None, "SMB"), ("b", "2024-03-01", None, "SMB")])
    churns.loc[0, "reason"] = "champion left"  # 30-60 days after churn
    churns.loc[1, "reason"] = "budget / pricing"  # 60-90 days after churn
    at = T("2024-06-15")
    rows = candidates_at(churns, at=at, lookback_days=365)
    model = fit_return_model(rows, np.zeros(len(rows), dtype=bool))
    got = winback_list(rows, model, spec=SPEC, at=at).set_index("account_id")
    assert got.loc["a", "approach"] == "reach new stakeholders"
    assert got.loc["a", "window_start"] == T("2024-05-31")
    assert got.loc["a", "timing"] == "now"  # day 45 of 30-60
    assert got.loc["b", "timing"] == "window passed"  # day 106 of 60-90
    assert got["rank"].tolist() == [1, 2]


def test_reasons_from_the_contract_tables(tmp_path: Path) -> None:
    frames = valid_frames()
    users = frames["users"]
    users.loc[0, "deactivated_at"] = T("2024-04-01")  # a's champion u1 leaves
    folder = write_parquet(tmp_path / "data", frames)
    source = load_source(folder, now=T("2025-01-01"))
    churns = pd.DataFrame(
        {
            "account_id": ["a", "b", "b", "a"],
            "churn_at": [T("2024-05-01"), T("2024-03-01"), T("2024-06-15"), T("2023-06-01")],
            "tenure_days": [480, 300, 20, 150],
        }
    )
    got = churn_reasons(
        source,
        churns,
        subscriptions=frames["subscriptions"],
        spec=SPEC,
        bands=CONFIG.timing_bands,
    )
    # champion deactivated 30 days before; failed invoice due 29 days before; a 20-day
    # relationship with no other evidence; nothing at all
    assert list(got) == [
        "champion left",
        "budget / pricing",
        "poor onboarding",
        "competitor switch / unknown",
    ]


def test_a_contraction_before_churn_reads_as_budget(tmp_path: Path) -> None:
    frames = valid_frames()
    subs = frames["subscriptions"]
    subs.loc[1, "arr"] = 600.0  # a: 1200 -> 600 on 2024-01-01
    folder = write_parquet(tmp_path / "data", frames)
    source = load_source(folder, now=T("2025-01-01"))
    churns = pd.DataFrame(
        {"account_id": ["a"], "churn_at": [T("2024-03-01")], "tenure_days": [400]}
    )
    got = churn_reasons(source, churns, subscriptions=subs, spec=SPEC, bands=CONFIG.timing_bands)
    assert list(got) == ["budget / pricing"]


@pytest.mark.parametrize("lookback", [30])
def test_lookback_is_configurable(lookback: int) -> None:
    churns = _churns([("a", "2024-05-01", None, "SMB")])
    assert candidates_at(churns, at=T("2024-06-15"), lookback_days=lookback).empty


def test_rank_auc_equals_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    from models.outcomes.winback import _auc

    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.2
    p = np.round(rng.random(300), 1)  # many ties
    assert _auc(y.astype(int), p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from features.simulate import SimulationConfig, write_company
    from models.outcomes.tables import build_outcome_tables

    folder = tmp_path_factory.mktemp("wb") / "data"
    write_company(folder, SimulationConfig(accounts=150, months=24, seed=5))
    source = load_source(folder, now=T("2030-01-01"))
    return build_outcome_tables(source, config=CONFIG, grace_days=30)


def test_outcome_routes_serve_what_the_report_wrote(company, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json
    from types import SimpleNamespace

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from serving.report_html import timing_section, winback_section
    from serving.routes_outcomes import TIMING_FILE, WINBACK_FILE, outcome_files, router
    from serving.security import KeyStore

    files = outcome_files(company, None, as_of=company.data_end)
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    app = FastAPI()
    app.include_router(router)
    app.state.settings = SimpleNamespace(report_dir=tmp_path, auth_enabled=False)
    app.state.keys = KeyStore([])
    client = TestClient(app)
    body = client.get("/v1/winback").json()
    assert len(body["accounts"]) == len(company.winback)
    assert body["accounts"][0]["rank"] == 1
    probs = [a["return_probability"] for a in body["accounts"]]
    assert probs == sorted(probs, reverse=True)
    timing = client.get("/v1/churn-timing").json()
    pooled = [c for c in timing["cohorts"] if c["split"] == "all"]
    assert sum(c["churned_logos"] for c in pooled) == int(
        company.timing.query("split == 'all'")["churned_logos"].sum()
    )
    assert client.get("/v1/targets").status_code == 404  # not written without targets
    assert {TIMING_FILE, WINBACK_FILE} == set(files)
    # every churn of the last 12 months that is not back is on the list, none other
    assert (company.winback["churn_at"] >= company.data_end - pd.Timedelta(days=365)).all()
    assert "When customers churn" == timing_section(company).title
    assert "win-back window now" in winback_section(company).reading
