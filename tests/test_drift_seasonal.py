"""Seasonality is not drift: a seasonal simulated company right after training.

The simulator's activity dips in the summer and at the year end (features/simulate/usage.py),
so the snapshot of 1 October (September's usage vs August's) is a rebound that the history
shows every year. The reference stored with a model compares the snapshot with the recent
training months and with the same calendar month a year earlier; a feature is drift only
when it moved away from both.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from features.config import SnapshotConfig
from features.load import load_source
from features.simulate import SimulationConfig, write_company
from features.snapshots import build_snapshots
from features.spine import build_spine
from models.monitoring.drift import REFERENCE_FILE, DriftReference, population_stability
from models.rules.config import load_rules_config
from models.rules.health import HealthNormaliser
from models.rules.signals import rule_masks
from models.scoring.booster import model_features
from training.config import ExperimentConfig
from training.evaluate import labelled_rows
from training.pipeline import _write_drift_reference

END = pd.Timestamp("2026-10-01")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    # A seed no other test uses; two years, so the training rows hold a whole year.
    folder = tmp_path_factory.mktemp("seasonal")
    write_company(folder, SimulationConfig(accounts=300, months=24, seed=11, end=END))
    source = load_source(folder, now=END + pd.Timedelta(days=1))
    config = SnapshotConfig.model_validate({})
    return build_snapshots(source=source, spine=build_spine(source), config=config)


def _reference(snapshots: pd.DataFrame, tmp_path: Path, **drift: Any) -> DriftReference:
    """The reference training writes beside the model (same function, same rows)."""
    rows = labelled_rows(snapshots)
    model: Any = SimpleNamespace(feature_names=model_features(rows))
    config = ExperimentConfig.model_validate({"drift": drift})
    _write_drift_reference(tmp_path, rows=rows, model=model, config=config)
    return DriftReference.from_dict(json.loads((tmp_path / REFERENCE_FILE).read_text()))


def _latest(snapshots: pd.DataFrame) -> pd.DataFrame:
    return snapshots[snapshots["as_of"] == snapshots["as_of"].max()].reset_index(drop=True)


def _significant(reference: DriftReference, frame: pd.DataFrame) -> set[str]:
    table = population_stability(reference, frame)
    return set(table.loc[table["status"] == "significant", "feature"])


def test_latest_snapshot_is_the_seasonal_rebound(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    """Against the recent training months alone, the rebound reads as drift (the old check)."""
    latest = _latest(snapshots)
    assert latest["as_of"].iloc[0] == END
    assert latest["usage_trend_30d"].median() > 0.2
    recent_only = _reference(snapshots, tmp_path, same_month_last_year=False)
    assert not recent_only.seasonal
    assert "usage_trend_30d" in _significant(recent_only, latest)


def test_no_feature_is_significant_in_the_month_after_training(
    snapshots: pd.DataFrame, tmp_path: Path
) -> None:
    reference = _reference(snapshots, tmp_path)
    rows = labelled_rows(snapshots)
    # A whole training year, by calendar month, and the recent window unchanged.
    assert sorted(reference.seasonal) == list(range(1, 13))
    assert reference.meta["as_of_max"] == str(rows["as_of"].max().date())
    assert pd.Timestamp(reference.meta["seasonal_as_of_min"]) > rows["as_of"].max() - pd.DateOffset(
        years=1
    )
    table = population_stability(reference, _latest(snapshots))
    assert set(table["status"]) <= {"stable", "moderate", "untrained"}, table.head(5)
    assert table.set_index("feature").loc["usage_trend_30d", "psi"] < 0.1


def test_a_real_shift_is_still_flagged(snapshots: pd.DataFrame, tmp_path: Path) -> None:
    reference = _reference(snapshots, tmp_path)
    shifted = _latest(snapshots)
    shifted["arr"] = shifted["arr"] * 3.0
    shifted["tenure_days"] = shifted["tenure_days"] + 400.0
    shifted["segment"] = shifted["segment"].replace({"SMB": "Enterprise"})
    assert _significant(reference, shifted) == {"arr", "tenure_days", "segment"}


def test_usage_growth_trigger_is_not_fired_by_the_seasonal_rebound(
    snapshots: pd.DataFrame,
) -> None:
    """The trigger's share of accounts in the rebound month stays near its other months'."""
    config = load_rules_config()
    normaliser = HealthNormaliser.fit(labelled_rows(snapshots), config=config)
    last_year = snapshots[snapshots["as_of"] > END - pd.DateOffset(years=1)]
    fired = rule_masks(last_year, config=config, health=None, normaliser=normaliser)
    by_month = fired["usage_growth"].groupby(last_year["as_of"]).mean()
    usual = by_month.drop(END).median()
    assert 0 < by_month[END] <= 1.5 * usual, by_month
    # Month over month (the rule before), the rebound fires it far more often than usual.
    month_over_month = (last_year["usage_trend_30d"] > 0.2).groupby(last_year["as_of"]).mean()
    assert month_over_month[END] > 2 * month_over_month.drop(END).median()
