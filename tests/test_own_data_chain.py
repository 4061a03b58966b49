"""The README's "Your own data" routine, as a user runs it: the installed `nrr`, a project
folder outside the repository, no NRR_* / MLFLOW_* variables, tables exported by another
tool (timestamps tz-aware UTC), histories from 9 to 36 months.

validate -> snapshots -> train -> score -> backtest-forecast -> forecast -> drift, each
must exit 0 (backtest-forecast may refuse a history too short for any quarter, in one
line); models land in ./mlops of the project folder and nothing lands in the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments import FAST_EXPERIMENT
from features.simulate import SimulationConfig, write_company

pytestmark = pytest.mark.slow  # five companies through the whole chain: ~1 min each

NRR = Path(sys.executable).parent / "nrr"
REPO = Path(__file__).resolve().parents[1]
END = pd.Timestamp("2026-10-01")
SEED = 11
# Small books; the short histories get more accounts so both labels have enough positives.
ACCOUNTS = {9: 300, 12: 300, 18: 250, 24: 250, 36: 250}
# What the chain writes; none of it may appear in the repository.
OUTPUT_NAMES = {
    "mlops", "mlruns", "mlartifacts", "mlflow.db", "optuna.db", "api_keys.json",
    "drift_summary.json", "report.html",
}  # fmt: skip
OUTPUT_SUFFIXES = (".db", ".parquet", ".csv")
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".work"}


def export_like_a_warehouse(folder: Path, *, months: int) -> Path:
    """A simulated company re-written by pandas with tz-aware UTC timestamps, no oracle."""
    write_company(
        folder, SimulationConfig(accounts=ACCOUNTS[months], months=months, seed=SEED, end=END)
    )
    (folder / "oracle.parquet").unlink()  # the simulator's truth: no real export has it
    for path in folder.glob("*.parquet"):
        frame = pd.read_parquet(path)
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                continue
            if pd.api.types.is_datetime64_any_dtype(frame[col]):
                frame[col] = frame[col].dt.tz_localize("UTC")
        frame.to_parquet(path, index=False)
    return folder


def repo_outputs() -> set[Path]:
    """Files and folders in the repository that look like something the chain writes."""
    found: set[Path] = set()
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in [*dirs, *files]:
            if name in OUTPUT_NAMES or name.endswith(OUTPUT_SUFFIXES):
                found.add(Path(root, name))
    return found


def nrr(*args: str | Path, timings: dict[str, float]) -> subprocess.CompletedProcess[str]:
    began = time.perf_counter()
    done = subprocess.run(
        [str(NRR), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    timings[str(args[0])] = time.perf_counter() - began
    return done


def ok(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{done.args[1]} exited {done.returncode}:\n{output}"
    assert "Traceback" not in output, output
    return output


def active_accounts(data: Path, as_of: pd.Timestamp) -> set[str]:
    subs = pd.read_parquet(data / "subscriptions.parquet")
    start = subs["start_at"].dt.tz_convert(None)
    end = subs["end_at"].dt.tz_convert(None)
    active = (start <= as_of) & (end.isna() | (as_of < end)) & (subs["arr"] > 0)
    return set(subs.loc[active, "account_id"].astype(str))


def check_forecast_run(store: Path, report: Path, *, with_backtest: bool) -> None:
    """The forecast is a run of `nrr-forecast` in the project's store: its NRR figures are
    forecast.json's, the report and (with Chromium) its PDF and first screen are attached."""
    import json
    import shutil

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nrr-forecast")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    written = json.loads((report / "forecast.json").read_text())
    fan = {
        (row["quarter"], q): row[q]
        for row in written["fan"]
        if row["group"] == "All" and row["metric"] == "nrr"
        for q in ("p10", "p50", "p90")
    }
    assert len(fan) == 12
    for (quarter, q), value in fan.items():
        assert run.data.metrics[f"fan_nrr_{quarter}q_{q}"] == pytest.approx(
            value, abs=1e-9
        )  # JSON keeps 10 decimals
    assert run.data.tags["quarter"] == written["quarter"]
    assert any(k.startswith("backtest_coverage_") for k in run.data.metrics) is with_backtest
    attached = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/report.html" in attached and "report/forecast.json" in attached
    if shutil.which("chromium"):
        assert {"report/report.pdf", "report/report_top.png"} <= attached
        assert (report / "report.pdf").read_bytes().startswith(b"%PDF")
        assert (report / "report_top.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("months", sorted(ACCOUNTS))
def test_own_data_chain_from_a_project_folder(
    months: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("NRR_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    assert REPO not in tmp_path.resolve().parents
    before = repo_outputs()
    began = time.perf_counter()
    data = export_like_a_warehouse(tmp_path / "export", months=months)
    timings: dict[str, float] = {"simulate+export": time.perf_counter() - began}

    ok(nrr("validate", "--data", data, timings=timings))
    snaps = tmp_path / "snapshots.parquet"
    ok(nrr("snapshots", "--data", data, "--out", snaps, "--experiment", FAST_EXPERIMENT,
           timings=timings))  # fmt: skip
    ok(nrr("train", "--data", data, "--snapshots", snaps, "--experiment", FAST_EXPERIMENT,
           timings=timings))  # fmt: skip
    assert (tmp_path / "mlops" / "mlflow.db").is_file(), "models are not in ./mlops"

    ok(nrr("score", "--data", data, "--out", "scores.csv", timings=timings))
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"account_id": str})
    as_of = pd.Timestamp(scores["as_of"].iloc[0])
    assert sorted(scores["account_id"]) == sorted(active_accounts(data, as_of))
    assert scores["account_id"].is_unique
    assert scores["churn_probability"].notna().all()
    assert scores["churn_probability"].between(0, 1).all()
    if "churn_source" in scores.columns:
        assert (scores["churn_source"] == "model").all(), scores["churn_source"].value_counts()

    backtest = tmp_path / "forecast_backtest.csv"
    done = nrr("backtest-forecast", "--data", data, "--snapshots", snaps, "--out", backtest,
               timings=timings)  # fmt: skip
    if done.returncode == 0:
        ok(done)
        assert backtest.is_file()
        extra = ["--backtest", str(backtest)]
    else:  # a history too short for any quarter: one line saying so, no table written
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "Traceback" not in output and "not enough history" in output, output
        assert not backtest.exists()
        extra = []
    ok(nrr("forecast", "--data", data, "--snapshots", snaps, "--out", "report", *extra,
           timings=timings))  # fmt: skip
    assert (tmp_path / "report" / "report.html").is_file()
    check_forecast_run(tmp_path / "mlops", tmp_path / "report", with_backtest=bool(extra))

    ok(nrr("drift", "--snapshots", snaps, "--out", "drift.json", timings=timings))
    assert (tmp_path / "drift.json").is_file()

    assert repo_outputs() - before == set(), "the chain wrote into the repository"
    total = time.perf_counter() - began
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    print(f"\n{months} months, {ACCOUNTS[months]} accounts: {total:.0f}s ({steps})")
