"""Simulation settings and the demo company's fixed catalogue (plans, segments, names)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.simulate.plays import PlaysConfig
from features.simulate.texts import DEFAULT_TOPICS, Topic

DEFAULT_END = pd.Timestamp("2026-10-01 00:00")
BATCH_ACCOUNTS = 250
ORACLE_PATHS = 64
HORIZON_DAYS = 90
GRACE_DAYS = 30


class SimulationConfig(BaseModel):
    """How big a company to simulate, over which months, with which seed."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    accounts: int = Field(default=1500, ge=1, description="number of customer accounts")
    months: int = Field(default=36, ge=1, le=240, description="months of history before `end`")
    seed: int = Field(default=7, ge=0, description="same seed, byte-identical output")
    end: pd.Timestamp | None = Field(default=None, description="extraction time (naive UTC)")
    plays: PlaysConfig | None = Field(
        default=None, description="simulated CSM plays with a known effect (off: none)"
    )
    topics: tuple[Topic, ...] = Field(
        default=DEFAULT_TOPICS, min_length=2, description="what ticket and NPS texts are about"
    )

    @field_validator("end")
    @classmethod
    def _naive_utc(cls, value: pd.Timestamp | None) -> pd.Timestamp | None:
        if value is None:
            return None
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts

    @property
    def end_at(self) -> pd.Timestamp:
        """The extraction time: nothing observed happens at or after it."""
        return DEFAULT_END if self.end is None else self.end

    @property
    def start_at(self) -> pd.Timestamp:
        """History start: `months` calendar months before the end, at 00:00."""
        return (self.end_at - pd.DateOffset(months=self.months)).normalize()

    @property
    def days(self) -> int:
        """Whole simulated days in [start_at, end_at)."""
        return int(np.ceil((self.end_at - self.start_at) / pd.Timedelta(days=1)))


SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_SHARE = (0.6, 0.3, 0.1)
PLANS = ("Starter", "Professional", "Enterprise")
# list price per seat per year, metered monthly limit per seat
PLAN_SEAT_PRICE = np.array([300.0, 600.0, 1000.0])
PLAN_SEAT_LIMIT = np.array([400.0, 1000.0, 2500.0])
MODULE_SEAT_PRICE = 60.0
MODULES = ("analytics", "automation", "sso", "audit_log", "sandbox")
INDUSTRIES = ("Tech", "Finance", "Healthcare", "Retail", "Manufacturing", "Education", "Defense")
CHANNELS = ("inbound", "outbound", "partner", "self_serve", "event")
ICP_LEVELS = ("High", "Medium", "Low")
CSM_OWNERS = (
    "Ana Ruiz",
    "Ben Okafor",
    "Chloe Martin",
    "Dev Patel",
    "Eva Novak",
    "Farid Haddad",
    "Grace Kim",
    "Hugo Lindqvist",
    "Ines Costa",
    "Jonas Weber",
)
INTEGRATIONS = ("salesforce", "slack", "hubspot", "jira", "google_drive", "zendesk")
NOISE_EVENTS = ("login", "page_viewed", "help_opened")
