"""Settings of the snapshot and label stage (values live in experiments/*.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SnapshotConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    freq: Literal["month", "week"] = "month"
    horizon_days: int = Field(default=90, gt=0, description="label window length")
    grace_days: int = Field(default=30, ge=0, description="a gap shorter than this is not churn")
    min_tenure_days: int = Field(default=0, ge=0, description="skip accounts younger than this")
