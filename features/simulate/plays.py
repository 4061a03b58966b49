"""Settings of the simulated plays (features/simulate/interventions.py has the mechanics).

A module of its own so the simulation settings can name it without an import cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlaySim(BaseModel):
    """One play and its true effect on the latent health."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    health_boost: float = Field(ge=0, le=5)


DEFAULT_PLAYS = (
    PlaySim(name="executive escalation", health_boost=1.2),
    PlaySim(name="recovery plan", health_boost=0.6),
    PlaySim(name="check-in email", health_boost=0.0),
)


class PlaysConfig(BaseModel):
    """Which accounts get plays, how often, and what the plays do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plays: tuple[PlaySim, ...] = Field(default=DEFAULT_PLAYS, min_length=1)
    # None: every active account is eligible (a randomised rollout: who gets a play does
    # not depend on anything the report cannot see, so a matched comparison is unbiased).
    # A number: only accounts whose latent health is below it (CSMs who know more than the
    # model), which biases any comparison on observed risk; for showing that bias.
    eligible_health: float | None = None
    treat_share: float = Field(default=0.06, gt=0, le=1)  # per month start and eligible account
    cooldown_days: int = Field(default=180, ge=0)
