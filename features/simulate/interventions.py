"""Plays with a known true effect, for checking the intervention report (issue 16 part 2).

Off by default (`SimulationConfig.plays` is None): the demo company is unchanged. When on,
at every month start each active account (with `eligible_health`, only those whose latent
health is below it) that had no play in the last `cooldown_days` gets one with probability
`treat_share`; the play is drawn from `plays` and raises the account's latent base health
by its `health_boost` from that moment (the health then drifts up toward it). A play with
boost 0 is a placebo.

The truth, per treated account: the 90-day retention with the play minus without it, both
by Monte Carlo continuation of the same daily process from the state at the play's start
(as the oracle does), so the true effect on "still a customer 90 days later" is known.
`interventions_truth.parquet` holds it per play row (to average over exactly the rows a
report evaluates), `interventions_truth.json` per play; the `interventions` table holds
what a CSM tool would export (account, play, owner, started_at, notes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.simulate.arrow import TS, Clock, account_ids
from features.simulate.config import CSM_OWNERS, HORIZON_DAYS
from features.simulate.latent import State, step
from features.simulate.oracle import stack_states
from features.simulate.plays import PlaysConfig

PLAYS_TABLE = "interventions"
TRUTH_FILE = "interventions_truth.json"
TRUTH_ROWS_FILE = "interventions_truth.parquet"
START_HOUR_US = 9 * 3_600_000_000  # plays start at 09:00 on the month's first day
TRUTH_PATHS = 64


@dataclass
class PlayAssigner:
    """The `run_history` day hook of one batch: assigns plays and applies their effect."""

    config: PlaysConfig
    rng: np.random.Generator
    month_days: frozenset[int]
    rows: list[tuple[int, int, int]] = field(default_factory=list)  # account, day, play
    states: list[State] = field(default_factory=list)  # each row's state before the play
    last: dict[int, int] = field(default_factory=dict)

    def __call__(self, day: int, state: State) -> None:
        if day not in self.month_days:
            return
        cool = self.config.cooldown_days
        eligible = state.active.copy()
        if self.config.eligible_health is not None:
            eligible &= state.health < self.config.eligible_health
        idx = [i for i in np.flatnonzero(eligible) if day - self.last.get(int(i), -(10**9)) >= cool]
        if not idx:
            return
        chosen = np.asarray(idx)[self.rng.random(len(idx)) < self.config.treat_share]
        if chosen.size == 0:
            return
        plays = self.rng.integers(0, len(self.config.plays), chosen.size)
        self.states.append(state.take(chosen))
        boost = np.array([self.config.plays[p].health_boost for p in plays], dtype=np.float32)
        state.base[chosen] += boost
        for i, p in zip(chosen, plays, strict=True):
            self.rows.append((int(i), day, int(p)))
            self.last[int(i)] = day

    def table(self, index: np.ndarray, owner: np.ndarray, clock: Clock) -> pa.Table:
        """The interventions rows of this batch (the contract table)."""
        acct = np.array([r[0] for r in self.rows], dtype=np.int64)
        day = np.array([r[1] for r in self.rows], dtype=np.int64)
        names = np.array([self.config.plays[r[2]].name for r in self.rows], dtype=object)
        who = owner[acct] if acct.size else np.zeros(0, dtype=np.int64)
        owners = np.array([CSM_OWNERS[o] if o >= 0 else "CS team" for o in who], dtype=object)
        return pa.table(
            {
                "account_id": pa.array(account_ids(index[acct]), type=pa.string()),
                "play": pa.array(names, type=pa.string()),
                "owner": pa.array(owners, type=pa.string()),
                "started_at": clock.ts(day * 86_400_000_000 + START_HOUR_US),
                "notes": pa.array([f"simulated play {n}" for n in names], type=pa.string()),
            },
            schema=pa.schema(
                [
                    ("account_id", pa.string()),
                    ("play", pa.string()),
                    ("owner", pa.string()),
                    ("started_at", TS),
                    ("notes", pa.string()),
                ]
            ),
        )

    def true_effects(self, *, paths: int = TRUTH_PATHS) -> np.ndarray:
        """Per row: P(still a customer after 90 days | play) - P(... | no play)."""
        if not self.rows:
            return np.zeros(0)
        start = stack_states(self.states)
        boost = np.array([self.config.plays[r[2]].health_boost for r in self.rows])
        day = np.array([r[1] for r in self.rows], dtype=np.int64)
        kept = []
        for arm in (boost, np.zeros_like(boost)):
            rows = np.repeat(np.arange(len(self.rows)), paths)
            state = start.take(rows)
            state.base += arm[rows].astype(np.float32)
            churned = np.zeros(rows.size, dtype=bool)
            for k in range(HORIZON_DAYS):
                churned |= step(state, day[rows] + k, self.rng).churned
            kept.append(1.0 - churned.reshape(-1, paths).mean(axis=1))
        return np.asarray(kept[0] - kept[1], dtype=float)


def batch_assigner(
    config: PlaysConfig | None, rng: np.random.Generator, month_days: np.ndarray
) -> PlayAssigner | None:
    """The day hook of one batch, or None when the simulation has no plays."""
    if config is None:
        return None
    return PlayAssigner(config, rng, frozenset(int(d) for d in month_days))


@dataclass
class PlayRecords:
    """What every batch's assigner produced, written once at the end."""

    tables: list[pa.Table] = field(default_factory=list)
    plays: list[str] = field(default_factory=list)
    effects: list[float] = field(default_factory=list)

    def add(
        self, assigner: PlayAssigner, *, index: np.ndarray, owner: np.ndarray, clock: Clock
    ) -> None:
        self.tables.append(assigner.table(index, owner, clock))
        self.plays += [assigner.config.plays[r[2]].name for r in assigner.rows]
        self.effects += assigner.true_effects().tolist()

    def write(self, out: Path, config: PlaysConfig) -> None:
        """interventions.parquet and interventions_truth.json into `out`."""
        table = pa.concat_tables(self.tables)
        pq.write_table(table, out / f"{PLAYS_TABLE}.parquet")
        rows = table.select(["account_id", "play", "started_at"]).append_column(
            "true_retention_effect", pa.array(self.effects, type=pa.float64())
        )
        pq.write_table(rows, out / TRUTH_ROWS_FILE)
        plays = np.array(self.plays, dtype=object)
        effects = np.array(self.effects, dtype=float)
        truth = {
            "outcome": "still a customer 90 days after the play started (ARR > 0)",
            "effect": "ATT: mean over treated accounts of P(retained | play) - P(retained | none)",
            "plays": {
                p.name: {
                    "health_boost": p.health_boost,
                    "treated": int((plays == p.name).sum()),
                    "true_retention_effect": float(effects[plays == p.name].mean())
                    if (plays == p.name).any()
                    else None,
                }
                for p in config.plays
            },
        }
        (out / TRUTH_FILE).write_text(json.dumps(truth, indent=1))
