"""`nrr score`: every account active at as_of scored from raw tables into CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from api_factories import raw_company
from typer.testing import CliRunner

from nrr.cli import build_app
from serving.cli import batch_score
from serving.settings import ServingSettings, get_settings

REQUIRED = [
    "account_id",
    "as_of",
    "churn_probability",
    "expansion_probability",
    "health_score",
    "health_band",
    "pqa_score",
    "source",
    "churn_source",
    "expansion_source",
    "driver_1_feature",
    "driver_1_contribution",
    "driver_1_text",
]


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return raw_company(tmp_path_factory.mktemp("raw") / "company")


def test_batch_scores_only_accounts_active_at_as_of(company: Path) -> None:
    settings = ServingSettings(use_registry=False)
    table, bundle = batch_score(company, as_of=pd.Timestamp("2026-09-15"), settings=settings)
    # c00, c03, c06 ended 60 days before the end: inactive on 2026-09-15.
    assert sorted(table["account_id"]) == [f"c{i:02d}" for i in range(9) if i % 3]
    assert (table["source"] == "rules").all() and "registry disabled" in bundle.fallback_reason
    assert (table["churn_source"] == "rules").all() and (table["expansion_source"] == "rules").all()
    assert table["health_score"].between(0, 100).all()
    assert (table["as_of"] == pd.Timestamp("2026-09-15")).all()


def test_batch_without_as_of_scores_at_the_data_end(company: Path) -> None:
    from datetime import UTC, datetime

    from features.load import load_source

    end = load_source(company, now=pd.Timestamp(datetime.now(UTC)).tz_localize(None)).data_end
    table, _ = batch_score(company, as_of=None, settings=ServingSettings(use_registry=False))
    assert (table["as_of"] == pd.Timestamp(end).normalize()).all()
    # The accounts that ended 60 days before the end are no longer active then.
    assert sorted(table["account_id"]) == [f"c{i:02d}" for i in range(9) if i % 3]


def test_batch_before_the_churn_includes_the_churned_accounts(company: Path) -> None:
    table, _ = batch_score(
        company, as_of=pd.Timestamp("2026-07-01"), settings=ServingSettings(use_registry=False)
    )
    assert len(table) == 9


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_nrr_score_writes_the_file_type_of_its_extension(
    company: Path, tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NRR_USE_REGISTRY", "false")
    get_settings.cache_clear()
    out = tmp_path / f"scores{suffix}"
    result = CliRunner().invoke(
        build_app(), ["score", "--data", str(company), "--as-of", "2026-09-15", "--out", str(out)]
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert set(REQUIRED) <= set(table.columns) and len(table) == 6


def test_nrr_score_refuses_an_unknown_extension_and_a_date_after_the_data(
    company: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    bad_ext = runner.invoke(
        build_app(),
        [
            "score",
            "--data",
            str(company),
            "--as-of",
            "2026-09-15",
            "--out",
            str(tmp_path / "s.xlsx"),
        ],
    )
    assert bad_ext.exit_code != 0 and ".csv or .parquet" in bad_ext.output
    with pytest.raises(ValueError, match="after the data's end"):
        batch_score(
            company, as_of=pd.Timestamp("2027-01-01"), settings=ServingSettings(use_registry=False)
        )


def test_score_snapshots_flattens_model_scores_and_numbered_drivers() -> None:
    from api_factories import model_bundle, snapshot_rows

    from models.rules.config import load_rules_config
    from serving.scoring import score_snapshots

    rows = snapshot_rows(6)
    table = score_snapshots(rows, bundle=model_bundle(), rules=load_rules_config(), drivers_k=2)
    assert list(table["account_id"]) == list(rows["account_id"])
    assert (table["source"] == "model").all() and table["fallback_reason"].isna().all()
    assert (table["churn_source"] == "model").all() and (table["expansion_source"] == "model").all()
    assert {"driver_2_feature", "driver_2_contribution", "driver_2_text"} <= set(table.columns)
    assert "driver_3_feature" not in table.columns
    assert table["churn_probability"].between(0, 1).all()
    assert (table["churn_model_version"] == "3").all()


def test_extracted_at_sets_the_default_scoring_date(company: Path) -> None:
    # A --catalog has no manifest.yaml: --extracted-at says when the export was taken, and
    # without --as-of the accounts are scored on that day.
    from features.load import load_source

    observed = load_source(company, now=pd.Timestamp("2030-01-01")).data_end
    when = pd.Timestamp(observed).normalize() + pd.Timedelta(days=2, hours=13)
    table, _ = batch_score(
        company, as_of=None, settings=ServingSettings(use_registry=False), extracted_at=when
    )
    assert (table["as_of"] == when.normalize()).all()
    assert sorted(table["account_id"]) == [f"c{i:02d}" for i in range(9) if i % 3]
