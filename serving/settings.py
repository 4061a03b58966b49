"""Settings of the serving deployable, read from `NRR_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    """Everything the API and batch scoring need to know about their environment."""

    model_config = SettingsConfigDict(env_prefix="NRR_", frozen=True, extra="forbid")

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; None = MLflow's own default (MLFLOW_TRACKING_URI)",
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
    api_keys_path: Path = Field(
        default=Path("api_keys.json"), description="hashed API keys written by `nrr apikey create`"
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
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)


@lru_cache(maxsize=1)
def get_settings() -> ServingSettings:
    """The process's settings, read from the environment once."""
    return ServingSettings()
