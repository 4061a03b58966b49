"""Settings of the snapshot and label stage (values live in experiments/*.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SnapshotConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    freq: Literal["month", "week"] = "month"
    horizon_days: int = Field(default=90, gt=0, description="label window length")
    grace_days: int = Field(
        default=30,
        ge=0,
        description="a period starting at most this many days after the previous one ended "
        "continues it (features.sql.GRACE_CONTINUES); a longer gap is churn",
    )
    min_tenure_days: int = Field(default=0, ge=0, description="skip accounts younger than this")


class SnapshotSettingsError(ValueError):
    """The `snapshot` section of an experiment file cannot be read or is invalid."""


def snapshot_settings(experiment: Path) -> SnapshotConfig:
    """The `snapshot` section of an experiment YAML (the full file is checked by training)."""
    try:
        data = yaml.safe_load(experiment.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SnapshotSettingsError(f"cannot read experiment file {experiment}: {exc}") from None
    section = data.get("snapshot", {}) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise SnapshotSettingsError(f"{experiment}: `snapshot` must be a mapping")
    try:
        return SnapshotConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"snapshot.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise SnapshotSettingsError(f"{experiment}: {problems}") from None
