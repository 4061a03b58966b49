"""The workspace: one answer, for every command, to "where do models, runs and keys live?".

`nrr train` writes and `nrr score`, `forecast`, `serve`, `drift`, `promote`, ... read the
same store because they all resolve it here:

- `--workdir DIR` on the command, else `NRR_WORKDIR`, else `./mlops` (the current folder:
  run the commands from one project folder, or pass the same --workdir everywhere);
- inside it: `mlflow.db` (runs and the model registry), `mlartifacts/` (model files and
  reports), `optuna.db` (tuning studies), `api_keys.json` (hashed API keys);
- a remote MLflow server instead of the local store: `MLFLOW_TRACKING_URI` (or
  `NRR_TRACKING_URI`); the Optuna study and the keys stay in the workdir.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_WORKDIR = Path("mlops")
WORKDIR_HELP = (
    "workspace folder: MLflow store, Optuna study, API keys (default NRR_WORKDIR or ./mlops)"
)


class Workspace(BaseSettings):
    """Where runs, models, studies and keys are stored (env: NRR_WORKDIR, NRR_TRACKING_URI)."""

    model_config = SettingsConfigDict(env_prefix="NRR_", extra="ignore", frozen=True)

    workdir: Path = DEFAULT_WORKDIR
    tracking_uri: str | None = None
    experiment_name: str = "nrr-engine"

    @classmethod
    def resolve(cls, workdir: Path | None = None, tracking_uri: str | None = None) -> Workspace:
        """Command-line values over the environment over the defaults."""
        base = cls()
        uri = tracking_uri or base.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        return base.model_copy(update={"workdir": workdir or base.workdir, "tracking_uri": uri})

    @property
    def root(self) -> Path:
        return self.workdir.expanduser().resolve()

    @property
    def is_local(self) -> bool:
        return self.tracking_uri is None or self.tracking_uri.startswith("sqlite:///")

    def resolved_tracking_uri(self) -> str:
        """The configured URI, else a SQLite file in the workdir."""
        return self.tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    def artifact_location(self) -> str | None:
        """Local artifact root for a local store; a remote server chooses its own."""
        if self.tracking_uri is None:
            return (self.root / "mlartifacts").as_uri()
        return None

    def optuna_storage(self) -> str:
        """SQLite file of the tuning studies, in the workdir."""
        return f"sqlite:///{self.root / 'optuna.db'}"

    @property
    def api_keys_path(self) -> Path:
        return self.root / "api_keys.json"

    @property
    def interventions_path(self) -> Path:
        """Plays recorded through POST /v1/interventions (JSON lines, append-only)."""
        return self.root / "interventions.jsonl"

    def store_exists(self) -> bool:
        """False when a local store was never written (so a reader can say so plainly)."""
        if self.tracking_uri is not None:
            if self.tracking_uri.startswith("sqlite:///"):
                return Path(self.tracking_uri.removeprefix("sqlite:///")).is_file()
            return True
        return (self.root / "mlflow.db").is_file()

    def describe(self) -> str:
        """The store in words, for messages: 'MLflow store sqlite:///.../mlflow.db'."""
        return f"MLflow store {self.resolved_tracking_uri()}"


_MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def point_mlflow_at(workspace: Workspace) -> None:
    """Make the workspace's store MLflow's current one, without creating anything."""
    import mlflow

    user_values = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    uri = workspace.resolved_tracking_uri()
    mlflow.set_tracking_uri(uri)
    # The store is also the registry: a registry URI set earlier in the process (a notebook,
    # another workspace) must not receive this workspace's models.
    mlflow.set_registry_uri(uri)
    # MLflow writes the URIs into the environment for subprocesses; put the user's values
    # back so a later Workspace.resolve in this process does not take our store for theirs.
    for name, value in user_values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def setup_tracking(workspace: Workspace) -> str:
    """Point MLflow at the workspace's store, make its experiment current, return its id.

    Setting the experiment (not only passing its id to the parent run) keeps nested runs,
    such as Optuna's trials, in the same experiment instead of MLflow's "Default" one.
    """
    import mlflow

    if workspace.tracking_uri is None:
        workspace.root.mkdir(parents=True, exist_ok=True)
    point_mlflow_at(workspace)
    experiment = mlflow.get_experiment_by_name(workspace.experiment_name)
    if experiment is None:
        experiment_id = str(
            mlflow.create_experiment(
                workspace.experiment_name, artifact_location=workspace.artifact_location()
            )
        )
    else:
        experiment_id = str(experiment.experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
