"""Settings of the serving deployable, read from `NRR_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.workspace import Workspace


class ServingSettings(BaseSettings):
    """Everything the API and batch scoring need to know about their environment."""

    model_config = SettingsConfigDict(env_prefix="NRR_", frozen=True, extra="forbid")

    workdir: Path | None = Field(
        default=None,
        description="workspace folder of `nrr train` (models, keys); None = models.workspace default",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI of a remote server; None = the workspace's store",
    )
    churn_model: str = Field(default="nrr-churn", description="registered churn model name")
    expansion_model: str = Field(
        default="nrr-expansion", description="registered expansion model name"
    )
    model_alias: str = Field(default="champion", description="registry alias to serve")
    use_registry: bool = Field(
        default=True, description="False: never contact MLflow, serve rules only"
    )
    snapshots_path: Path | None = Field(
        default=None,
        description="Parquet file written by `nrr snapshots`; latest row per account served",
    )
    rules_path: Path | None = Field(
        default=None, description="rules YAML; None = the packaged default"
    )
    api_keys_path: Path | None = Field(
        default=None,
        description="hashed API keys of `nrr apikey create`; None = api_keys.json in the workspace",
    )
    auth_enabled: bool = Field(default=True, description="False only for local experiments")
    max_body_bytes: int = Field(
        default=2_000_000, gt=0, description="larger request bodies get 413"
    )
    max_batch_size: int = Field(default=1_000, gt=0, description="accounts per POST /v1/score")
    max_page_size: int = Field(default=500, gt=0, description="largest page of GET /v1/accounts")
    drivers_k: int = Field(default=5, ge=0, le=50, description="top drivers per prediction")
    max_renewal_days: int = Field(
        default=730, gt=0, description="largest within_days of /v1/renewals"
    )
    artifacts_dir: Path | None = Field(
        default=None, description="where downloaded model artifacts go; None = a temporary folder"
    )
    report_dir: Path | None = Field(
        default=None,
        description="folder written by `nrr forecast`; served at /dashboard, /v1/forecast, /v1/nrr",
    )
    dashboard_public: bool = Field(
        default=False,
        description="True: /dashboard needs no key (only behind your own login, or locally)",
    )
    registry_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="budget of one model load's registry calls (start-up or reload); past it "
        "the API serves the rules and says why. MLflow's HTTP timeout and retries are derived "
        "from it",
    )
    startup_wait_seconds: float = Field(
        default=0.0,
        ge=0,
        description="how long start-up waits for the first load before answering; the load "
        "goes on in the background (/readyz 'loading' until it ends)",
    )
    keys_poll_seconds: float = Field(
        default=1.0,
        ge=0,
        description="how often the server looks at the keys file for changes; 0 = only on "
        "POST /v1/admin/reload",
    )
    shutdown_grace_seconds: float = Field(
        default=3.0,
        ge=0,
        description="on SIGTERM, how long requests in flight may finish before the server exits",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    def workspace(self) -> Workspace:
        """The store these settings point at (the same resolution as every `nrr` command)."""
        return Workspace.resolve(self.workdir, self.tracking_uri)

    def missing_store(self) -> str | None:
        """Why no model can be loaded at all (no store was ever written here), else None."""
        workspace = self.workspace()
        if not self.use_registry or workspace.store_exists():
            return None
        return (
            f"no trained models: {workspace.describe()} does not exist. Run `nrr train` in this "
            "folder first, or pass the --workdir (NRR_WORKDIR) it used"
        )

    def keys_path(self) -> Path:
        return self.api_keys_path or self.workspace().api_keys_path


@lru_cache(maxsize=1)
def get_settings() -> ServingSettings:
    """The process's settings, read from the environment once."""
    return ServingSettings()
