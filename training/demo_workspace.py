"""A small simulated company with snapshots and champion models: what the notebooks start from.

`prepare_workspace` is idempotent and safe to call from parallel processes on the same
folder (a file lock serialises them): it simulates the company only when the data folder
has no tables, builds the snapshots only when their Parquet file is missing, and trains the
experiment only when no champion is registered yet.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from experiments import FAST_EXPERIMENT
from features.config import SnapshotConfig
from features.contract import TABLES
from features.load import load_source, source_from_frames
from features.simulate import SimulationConfig, write_company
from features.snapshots import build_snapshots
from features.source import DataSource
from features.spine import build_spine
from models.clock import utc_now
from models.workspace import Workspace, setup_tracking
from training.config import REGISTERED_NAME, ExperimentConfig, load_experiment
from training.pipeline import TrainResult, as_of_view, train

REPO = Path(__file__).resolve().parents[1]
ORACLE_FILE = "oracle.parquet"
# The time column that dates each row of a table: a row dated at or after as_of did not
# exist yet at as_of.
ROW_TIME: dict[str, str] = {
    "accounts": "created_at",
    "subscriptions": "start_at",
    "users": "created_at",
    "events": "occurred_at",
    "integrations": "connected_at",
    "tickets": "created_at",
    "nps_responses": "responded_at",
    "invoices": "due_at",
}
# When a row's open state ended: unknown (still open) in an export taken before that.
CLOSED_AT: dict[str, str] = {
    "subscriptions": "end_at",
    "users": "deactivated_at",
    "integrations": "disconnected_at",
    "tickets": "resolved_at",
    "invoices": "paid_at",
}


@dataclass(frozen=True)
class DemoWorkspace:
    """The data folder, its validated source and snapshots, and the MLflow store of one notebook."""

    data_dir: Path
    work_dir: Path
    experiment: ExperimentConfig
    settings: Workspace
    source: DataSource
    snapshots: pd.DataFrame

    def oracle(self) -> pd.DataFrame | None:
        """The simulator's true probabilities, when the data is simulated."""
        path = self.data_dir / ORACLE_FILE
        return pd.read_parquet(path) if path.is_file() else None

    def table(self, name: str) -> pd.DataFrame:
        """One typed contract table of the source as a frame."""
        if name not in self.source.tables:
            raise KeyError(f"table {name!r} is not in the source ({sorted(self.source.tables)})")
        return self.source.sql(f"SELECT * FROM {name}")


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_company(data_dir: Path, *, accounts: int, months: int, seed: int) -> bool:
    """Simulate a company into `data_dir` unless it already holds tables; True if simulated."""
    tables = (data_dir / "accounts.parquet", data_dir / "accounts.csv")
    if data_dir.is_file() or any(t.is_file() for t in tables):  # a DuckDB file or an export
        return False
    tmp = data_dir.with_name(f".{data_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_company(tmp, SimulationConfig(accounts=accounts, months=months, seed=seed))
    if data_dir.exists():  # an empty folder the caller created
        data_dir.rmdir()
    tmp.rename(data_dir)
    return True


def read_source(data_dir: Path) -> DataSource:
    """The validated source of a data folder (its manifest's extraction time, else now, ends it)."""
    # The edge where "now" may enter: only as the bound of observed timestamps when the
    # folder has no manifest.yaml (a simulated company always has one).
    return load_source(data_dir, now=utc_now())


def snapshots_of(source: DataSource, *, config: SnapshotConfig, path: Path) -> pd.DataFrame:
    """Snapshots of every grid date, read from `path` when already built, else built and saved."""
    if path.is_file():
        return pd.read_parquet(path)
    frame = build_snapshots(
        source=source, spine=build_spine(source, freq=config.freq), config=config
    )
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return frame


def champions(settings: Workspace, experiment: ExperimentConfig) -> dict[str, str | None]:
    """Champion version per target of the experiment in the workspace's registry."""
    from mlflow import MlflowClient

    from training.registry import champion_version

    setup_tracking(settings)
    client = MlflowClient()
    return {t: champion_version(client, REGISTERED_NAME[t]) for t in experiment.targets}


def ensure_champion(ws: DemoWorkspace, *, as_of: pd.Timestamp | None = None) -> TrainResult | None:
    """Train the experiment (as if on `as_of`, when given) unless every target has a champion."""
    if all(v is not None for v in champions(ws.settings, ws.experiment).values()):
        return None
    frame = ws.snapshots
    if as_of is not None:
        frame = as_of_view(frame, as_of=as_of, horizon_days=ws.experiment.snapshot.horizon_days)
    return train(
        snapshots=frame,
        config=ws.experiment,
        settings=ws.settings,
        oracle=ws.oracle(),
        data_dir=ws.data_dir,
    )


def prepare_workspace(
    work_dir: Path,
    *,
    data_dir: Path | None = None,
    accounts: int = 250,
    months: int = 24,
    seed: int = 7,
    experiment: Path = FAST_EXPERIMENT,
    train_models: bool = True,
) -> DemoWorkspace:
    """Data (simulated when `data_dir` holds no tables), snapshots and, optionally, champions."""
    work_dir = Path(work_dir).resolve()
    data = Path(data_dir).resolve() if data_dir is not None else work_dir / "data"
    config = load_experiment(experiment)
    with _locked(work_dir):
        ensure_company(data, accounts=accounts, months=months, seed=seed)
        source = read_source(data)
        # one cached snapshot file per data folder, so pointing at other data rebuilds them
        key = hashlib.sha256(str(data).encode()).hexdigest()[:10]
        snapshots = snapshots_of(
            source, config=config.snapshot, path=work_dir / f"snapshots-{key}.parquet"
        )
        settings = Workspace(workdir=work_dir / "mlops")
        ws = DemoWorkspace(data, work_dir, config, settings, source, snapshots)
        if train_models:
            ensure_champion(ws)
    return ws


def without_future(source: DataSource, *, as_of: pd.Timestamp) -> DataSource:
    """The company as an export taken at `as_of` would show it (for leakage checks).

    Rows dated at or after `as_of` are deleted (accounts created then, or left without any
    contract, go with all their rows); end, deactivation, disconnection, resolution and
    payment times at or after `as_of` are blanked (still open then), and invoices paid only
    later are open. A snapshot at `as_of` must not change: nothing it reads lies in the future.
    """
    frames = {
        # only the columns the input had: an absent optional column stays absent
        name: source.sql(f"SELECT * FROM {name}").loc[
            :, [c.name for c in TABLES[name].columns if c.name in source.columns[name]]
        ]
        for name in TABLES
        if name in source.tables and name in ROW_TIME
    }
    frames = {name: f[f[ROW_TIME[name]] < as_of].copy() for name, f in frames.items()}
    for name, column in CLOSED_AT.items():
        if name in frames and column in frames[name]:
            later = frames[name][column] >= as_of
            if name == "invoices":
                frames[name].loc[later & (frames[name]["status"] == "paid"), "status"] = "open"
            frames[name].loc[later, column] = pd.NaT
    kept = set(frames["accounts"]["account_id"]) & set(frames["subscriptions"]["account_id"])
    frames = {
        name: f[f["account_id"].isin(kept)].reset_index(drop=True) for name, f in frames.items()
    }
    return source_from_frames(frames, event_map=source.event_map, extracted_at=as_of, now=as_of)
