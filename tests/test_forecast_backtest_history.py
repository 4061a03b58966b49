"""`nrr backtest-forecast` on simulated companies of 6, 12, 18 and 33 months, and bad input.

Each history gets a table or one clear line and exit 1, never a traceback; the feature
definition comes from the snapshot file, the champion or the experiment, in that order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import SnapshotConfig
from features.definition import FeatureDefinition, write_snapshots
from features.simulate import SimulationConfig, write_company
from training import forecast_backtest as fb
from training.forecast_backtest import (
    COLUMNS,
    MIN_POSITIVES,
    MIN_TRAIN_DATES,
    BacktestHistoryError,
    plan_quarters,
)

ACCOUNTS = 100


def _company(root: Path, months: int) -> Path:
    out = root / f"company_{months}"
    if not out.exists():
        write_company(out, SimulationConfig(accounts=ACCOUNTS, months=months, seed=3))
    return out


@pytest.fixture(scope="module")
def companies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("companies")


def _run(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    from nrr.cli import build_app

    monkeypatch.chdir(cwd)  # the default workspace ./mlops is looked at, never created
    monkeypatch.delenv("NRR_WORKDIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NRR_TRACKING_URI", raising=False)
    result = CliRunner().invoke(build_app(), ["backtest-forecast", *args, "--draws", "500"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback instead of a message: {result.exception!r}")
    return result.exit_code, " ".join(result.output.split())


def _table(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out)
    assert tuple(table.columns) == COLUMNS
    assert (table["p10"] <= table["p50"]).all() and (table["p50"] <= table["p90"]).all()
    return table


def test_33_months_backtests_every_quarter_with_the_full_requirements(
    companies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _company(companies, 33)
    out = tmp_path / "bt.csv"
    code, text = _run(["--data", str(data), "--out", str(out)], tmp_path, monkeypatch)
    assert code == 0, text
    table = _table(out)
    quarters = table.loc[table["segment"] == "All", "quarter_start"]
    assert len(quarters) >= 6
    assert "short history" not in text  # 33 months support the full requirements
    assert "features: the settings of quarterly.yaml" in text
    assert not (tmp_path / "mlops").exists()  # looking for a champion created no store


@pytest.mark.parametrize("months", [12, 18])
def test_short_histories_get_fewer_quarters_said_once(
    months: int, companies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _company(companies, months)
    out = tmp_path / "bt.csv"
    code, text = _run(["--data", str(data), "--out", str(out)], tmp_path, monkeypatch)
    assert code == 0, text
    table = _table(out)
    n = int((table["segment"] == "All").sum())
    assert n >= 1
    assert text.count("quarters backtested") + text.count("quarter backtested") == 1
    assert "short history" in text and "first possible" in text
    first = str(table["quarter"].iloc[0])
    assert f"first possible {first}" in text


def test_below_the_minimum_one_line_exit_1_and_nothing_written(
    companies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _company(companies, 6)
    out = tmp_path / "bt.csv"
    code, text = _run(["--data", str(data), "--out", str(out)], tmp_path, monkeypatch)
    assert code == 1
    assert "error: not enough history for a forecast backtest" in text
    assert f"needs {MIN_TRAIN_DATES} labelled snapshot dates" in text
    assert "first possible quarter is" in text and "Export a longer history" in text
    assert not out.exists() and not list(tmp_path.glob(".bt.csv*"))
    assert "not logged to MLflow" not in text and not (tmp_path / "mlops").exists()


def test_plan_quarters_below_the_minimum_raises_with_the_history_needed() -> None:
    dates = pd.date_range("2025-01-01", periods=4, freq="MS")
    frame = pd.DataFrame(
        {
            "account_id": ["a"] * 4,
            "as_of": dates,
            "labelled": [True, True, False, False],
            "churned": [1.0, 0.0, None, None],
            "expanded": [0.0, 1.0, None, None],
        }
    )
    with pytest.raises(BacktestHistoryError, match="first possible quarter is 2025Q3"):
        plan_quarters(frame, data_end=pd.Timestamp("2025-05-01"), horizon_days=90)
    # enough dates and a complete quarter, but too few positives: that is what is named
    long = pd.DataFrame(
        {
            "account_id": ["a"] * 12,
            "as_of": pd.date_range("2025-01-01", periods=12, freq="MS"),
            "labelled": [True] * 12,
            "churned": [0.0] * 12,
            "expanded": [0.0] * 12,
        }
    )
    with pytest.raises(BacktestHistoryError, match=f"{MIN_POSITIVES} churned"):
        plan_quarters(long, data_end=pd.Timestamp("2026-01-01"), horizon_days=90)


def test_missing_data_folder_and_snapshot_file(
    companies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bt.csv"
    code, text = _run(["--data", str(tmp_path / "nope"), "--out", str(out)], tmp_path, monkeypatch)
    assert code == 1 and "error: --data" in text and "no such file or folder" in text
    data = _company(companies, 12)
    args = ["--data", str(data), "--out", str(out), "--snapshots", str(tmp_path / "none.pq")]
    code, text = _run(args, tmp_path, monkeypatch)
    assert code == 1 and "error: --snapshots" in text and "no such file" in text
    assert not out.exists()


def test_snapshots_of_another_company_are_refused(
    companies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _company(companies, 12)
    other = pd.DataFrame(
        {
            "account_id": pd.array([f"zz-{i}" for i in range(20)], dtype="string"),
            "as_of": pd.Timestamp("2025-01-01"),
            "labelled": True,
            "churned": 0.0,
            "expanded": 0.0,
        }
    )
    path = tmp_path / "other.parquet"
    write_snapshots(other, path, FeatureDefinition(SnapshotConfig()))
    out = tmp_path / "bt.csv"
    args = ["--data", str(data), "--out", str(out), "--snapshots", str(path)]
    code, text = _run(args, tmp_path, monkeypatch)
    assert code == 1 and "another export" in text and "0 of its 20 accounts" in text
    assert not out.exists()


def test_a_snapshot_file_brings_its_own_definition(tmp_path: Path) -> None:
    path = tmp_path / "snaps.parquet"
    frame = pd.DataFrame({"account_id": ["a"], "as_of": [pd.Timestamp("2025-01-01")]})
    write_snapshots(frame, path, FeatureDefinition(SnapshotConfig(horizon_days=60, grace_days=14)))
    from experiments import DEFAULT_EXPERIMENT

    definition, origin = fb.feature_definition(
        snapshots=path, workdir=tmp_path / "ws", experiment=DEFAULT_EXPERIMENT
    )
    assert (definition.snapshot.horizon_days, definition.snapshot.grace_days) == (60, 14)
    assert "stored in snaps.parquet" in origin


def test_the_champion_definition_wins_when_the_store_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import models.workspace
    import training.registry
    from experiments import DEFAULT_EXPERIMENT

    champion = FeatureDefinition(SnapshotConfig(horizon_days=45, grace_days=10))
    looked: list[list[str]] = []

    def fake_champion(names: object) -> FeatureDefinition:
        looked.append(list(names))  # type: ignore[call-overload]
        return champion

    monkeypatch.setattr(training.registry, "champion_definition", fake_champion)
    monkeypatch.setattr(models.workspace, "setup_tracking", lambda settings: "0")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NRR_TRACKING_URI", raising=False)
    workdir = tmp_path / "ws"
    # no store: the experiment's settings, and no store is made just to look
    definition, origin = fb.feature_definition(
        snapshots=None, workdir=workdir, experiment=DEFAULT_EXPERIMENT
    )
    assert definition.snapshot.horizon_days == 90 and "quarterly.yaml" in origin
    assert not workdir.exists() and not looked
    workdir.mkdir()
    (workdir / "mlflow.db").touch()
    definition, origin = fb.feature_definition(
        snapshots=None, workdir=workdir, experiment=DEFAULT_EXPERIMENT
    )
    assert definition is champion and "champion" in origin
    assert looked == [["nrr-churn", "nrr-expansion"]]
