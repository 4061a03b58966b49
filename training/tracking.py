"""The run's provenance: data fingerprints, package versions, git commit."""

from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

PACKAGES = (
    "nrr-engine",
    "lightgbm",
    "pandas",
    "numpy",
    "scikit-learn",
    "mlflow",
    "optuna",
    "shap",
    "duckdb",
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
