"""The demo company: a generative simulator of a B2B SaaS customer base (`nrr simulate`).

The story. Every account has a latent *health* (an index around 0) that drifts daily
toward a target: its base level (ICP fit, a named CSM owner, onboarding success or
failure; unowned accounts decay slowly), minus a decaying shock component (champion
departures, support episodes) and minus a gap while it has no champion. Support episodes
start more often when health is low, last 2-6 weeks and bring bursts of negative,
higher-priority tickets. Champions leave at random (a shock) and are replaced after a
while, sometimes not. A latent *team demand* grows or shrinks with the account's growth
rate and its health; it fills the licensed seats and the metered usage limit.

Decisions happen at renewal points: month-to-month accounts (most SMB) at every 30-day
anniversary, annual and multi-year accounts at the term end (renewal_at). The churn
probability rises with low health, a falling health trend and low seat utilisation.
Demand above the seats turns into upsells (more seats, a plan upgrade, modules) scaled
by health, also mid-term for annual accounts well over their seats; low utilisation at
renewal turns into downgrades. Some churned accounts come back after more than the
grace window (reactivation, a new relationship, not an expansion).

What is observed (the contract tables) is drawn from those latent days: users provisioned
as the team grows within seats (one champion, an executive for larger accounts),
per user-day activity driven by health, seasonality (weekends, summer, December) and each
user's own propensity; feature breadth and depth growing with health and maturity;
invites, gate hits and second workspaces under seat pressure; metered quantities against
the limit; integrations; tickets and their tone; NPS answers; invoices whose collection
fails more often when health is low. `oracle.parquet` holds, per account and month start,
the true 90-day churn / expansion / contraction probabilities, by Monte Carlo
continuation of the same daily process from the latent state at that moment. Ticket texts
and NPS comments are each drawn from one topic of `SimulationConfig.topics` (problem topics
with negative tones, growth topics under seat pressure); `text_topics.parquet` records the
true topic of every text, for tests of the theme finder (the product never reads it).

Deterministic for a seed: each batch of accounts draws from its own streams
(`SeedSequence(seed, spawn_key=(batch, stream))`), and tables stream to Parquet batch by
batch, so memory stays bounded at any size.
"""

from __future__ import annotations

from features.simulate.config import SimulationConfig
from features.simulate.writer import SimulationSummary, write_company

__all__ = ["SimulationConfig", "SimulationSummary", "write_company"]
