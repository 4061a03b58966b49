"""MLflow/Optuna locations from settings, and the run's provenance (fingerprint, versions, git)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import pandas as pd
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGES = ("lightgbm", "pandas", "numpy", "scikit-learn", "mlflow", "optuna", "shap", "duckdb")


class TrainingSettings(BaseSettings):
    """Where runs, models and studies are stored (env prefix NRR_TRAIN_)."""

    model_config = SettingsConfigDict(env_prefix="NRR_TRAIN_", extra="ignore")

    workdir: Path = Path("mlops")
    tracking_uri: str | None = None
    experiment_name: str = "nrr-engine"

    def resolved_tracking_uri(self) -> str:
        """The configured URI, else a SQLite file in the workdir."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.workdir / 'mlflow.db').resolve()}"

    def artifact_location(self) -> str | None:
        """Local artifact root for a local store; a remote server chooses its own."""
        if self.resolved_tracking_uri().startswith("sqlite:///"):
            return (self.workdir / "mlartifacts").resolve().as_uri()
        return None

    def optuna_storage(self) -> str:
        """SQLite file beside the MLflow database."""
        return f"sqlite:///{(self.workdir / 'optuna.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> TrainingSettings:
    """Process-wide settings from the environment; MLFLOW_TRACKING_URI is honoured as well.

    Read once: mlflow.set_tracking_uri rewrites MLFLOW_TRACKING_URI in this process later.
    """
    settings = TrainingSettings()
    if settings.tracking_uri is None and (env := os.environ.get("MLFLOW_TRACKING_URI")):
        return settings.model_copy(update={"tracking_uri": env})
    return settings


def setup_tracking(settings: TrainingSettings) -> str:
    """Point MLflow at the configured store and return the experiment id."""
    import mlflow

    settings.workdir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri())
    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        mlflow.create_experiment(
            settings.experiment_name, artifact_location=settings.artifact_location()
        )
    )


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of a frame (values, column names and order)."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def folder_fingerprint(data_dir: Path) -> dict[str, str | int]:
    """sha256 and row count of each Parquet table in a data folder."""
    import pyarrow.parquet as pq

    out: dict[str, str | int] = {}
    for path in sorted(data_dir.glob("*.parquet")):
        out[f"{path.stem}.sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        out[f"{path.stem}.rows"] = int(pq.ParquetFile(path).metadata.num_rows)
    return out


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a model."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def git_commit(repo: Path) -> str | None:
    """HEAD commit of the repository holding the code, when there is one."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
