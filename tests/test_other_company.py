"""The second company generator (experiments/other_company.py) writes contract data the
product accepts, and its oracle is the probability of the labels the product computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.other_company import generate
from features.config import SnapshotConfig
from features.labels import build_labels
from features.load import inspect_source
from features.spine import build_spine

NOW = pd.Timestamp("2030-01-01")
PATHS = 60
TABLES = ("accounts", "subscriptions", "users", "events", "tickets", "invoices", "integrations")


def _company(folder: Path, seed: int = 4) -> Path:
    return generate(folder, accounts=150, months=10, seed=seed, start="2024-01-01", paths=PATHS)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("other") / "co"
    return folder, _company(folder)


def test_the_product_accepts_the_company(company: tuple[Path, Path]) -> None:
    folder, oracle = company
    report, source = inspect_source(folder, extracted_at=None, now=NOW)
    assert report.ok, report.summary()
    assert source is not None
    assert all((folder / f"{t}.parquet").is_file() for t in TABLES)
    # the oracle lies outside the data folder, so the product cannot read the answers
    assert oracle.parent == folder.parent and not (folder / oracle.name).exists()
    # exported the way pandas writes real data: tz-aware UTC at nanoseconds, string ids
    events = pd.read_parquet(folder / "events.parquet")
    assert str(events["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert events["account_id"].map(type).eq(str).all()


def test_oracle_matches_the_products_labels(company: tuple[Path, Path]) -> None:
    folder, oracle_file = company
    report, source = inspect_source(folder, extracted_at=None, now=NOW)
    assert source is not None
    config = SnapshotConfig()
    labels = build_labels(source=source, spine=build_spine(source), config=config)
    labels = labels[labels["labelled"].astype(bool)]
    oracle = pd.read_parquet(oracle_file)
    joined = labels.merge(
        oracle.assign(as_of=oracle["as_of"].astype(labels["as_of"].dtype)),
        on=["account_id", "as_of"],
        how="left",
    )
    assert len(joined) > 400 and joined["p_churn"].notna().all()
    for label, prob in (("churned", "p_churn"), ("expanded", "p_expand")):
        y = joined[label].astype(float).to_numpy()
        p = joined[prob].to_numpy()
        # rows are Bernoulli(p) given the state; one event sits in up to three monthly
        # 90-day windows of its account, so the binomial error is inflated by sqrt(3);
        # the oracle's own Monte Carlo error (PATHS paths per row) adds in quadrature
        label_se = np.sqrt((p * (1 - p)).sum()) / len(p) * np.sqrt(3)
        oracle_se = np.sqrt((p * (1 - p)).sum() / PATHS) / len(p)
        se = float(np.hypot(label_se, oracle_se))
        assert abs(y.mean() - p.mean()) < 3 * se, (label, y.mean(), p.mean(), se)
        assert 0 < y.mean() < 0.5


def test_a_seed_fixes_the_company(company: tuple[Path, Path], tmp_path: Path) -> None:
    folder, oracle = company
    again = _company(tmp_path / "co")
    for table in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(folder / f"{table}.parquet"),
            pd.read_parquet(tmp_path / "co" / f"{table}.parquet"),
        )
    pd.testing.assert_frame_equal(pd.read_parquet(oracle), pd.read_parquet(again))
    other = _company(tmp_path / "other", seed=5)
    assert not pd.read_parquet(other).equals(pd.read_parquet(oracle))
