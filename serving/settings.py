"""Settings of the serving deployable, read from `NRR_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.registry import FEATURES
from models.workspace import Workspace

# Longest text the request schema takes (account_id, csm_owner, each category value).
MAX_TEXT = 200
# The longest JSON number Python writes (e.g. -1.2345678901234567e-300) is 24 characters.
_NUMBER = 24
# More workers than this is a misconfiguration (each holds all models and snapshots).
MAX_WORKERS = 64
_DATE = len('"2026-11-15T00:00:00.000000+00:00"')


def account_bytes() -> int:
    """Upper bound of one POST /v1/score account in JSON, in bytes.

    Every registry feature at its longest (24-character numbers, quoted MAX_TEXT-character
    ASCII categories), account_id and csm_owner at MAX_TEXT characters, as_of and
    renewal_at, each key on its own line indented up to 16 spaces (pretty-printed).
    """
    per_key = 16 + 1 + 3 + 1  # indentation, newline, quotes and colon, comma
    value = {"category": MAX_TEXT + 2, "bool": len("false"), "numeric": _NUMBER}
    features = sum(len(f.name) + per_key + value[f.kind] for f in FEATURES)
    texts = 2 * (len("csm_owner") + per_key + MAX_TEXT + 2)
    dates = 2 * (len("renewal_at") + per_key + _DATE)
    return features + texts + dates + len("features") + per_key + 64


def body_bytes_for(batch_size: int) -> int:
    """A body limit that fits `batch_size` accounts at their largest, plus 64 KiB to spare."""
    return batch_size * account_bytes() + 65_536


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
        default=0,
        ge=0,
        description="larger request bodies get 413; 0 (default) = derived from max_batch_size "
        "so the largest batch fits with every field at its longest (body_bytes_for: about "
        "5.7 MB for 1,000 accounts)",
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
        # 8 s: a black-holed registry then leaves the rules answering every account within
        # 15 s of start (budget + precompute); a healthy store loads the models in 1-2 s
        default=8.0,
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
    workers: int = Field(
        default=1,
        ge=1,
        le=MAX_WORKERS,
        description="worker processes of `nrr serve` (one core each for Python work); they "
        "follow each other's reloads (serving.replicas)",
    )
    replica_sync_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often a worker of `nrr serve` checks whether another reloaded (one "
        "small file read); after a reload every worker serves the new state within this "
        "plus one load",
    )
    model_poll_seconds: float = Field(
        default=10.0,
        ge=0,
        description="how often `nrr serve` looks up the alias (two registry calls, no "
        "download) to follow a promotion without POST /v1/admin/reload; 0 = never",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _derive_body_limit(cls, data: Any) -> Any:
        # One definition: the body limit follows the batch size unless set explicitly.
        if not isinstance(data, dict):
            return data
        try:
            if int(data.get("max_body_bytes") or 0) != 0:
                return data
            batch = int(data.get("max_batch_size", 1_000))
        except (TypeError, ValueError):
            return data  # the fields' own validation reports it
        return {**data, "max_body_bytes": body_bytes_for(max(batch, 1))}

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
