"""Simulate the company batch by batch and stream every table to Parquet."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from rich.table import Table

from features.event_map import DEMO_EVENT_MAP, EVENT_MAP_FILE, dump_event_map
from features.simulate.arrow import SCHEMAS, Clock, account_ids, table
from features.simulate.commercial import accounts_table, invoices_table, subscriptions_table
from features.simulate.config import BATCH_ACCOUNTS, HORIZON_DAYS, SimulationConfig
from features.simulate.history import History, draw_accounts, run_history
from features.simulate.interventions import PlayAssigner, PlayRecords, batch_assigner
from features.simulate.oracle import oracle_probabilities
from features.simulate.people import draw_users, users_table
from features.simulate.signals import integrations_table, nps_table, tickets_table
from features.simulate.usage import Calendar, events_table

GENERATOR = "nrr-engine demo simulator"
ORACLE_FILE = "oracle.parquet"
MANIFEST_FILE = "manifest.yaml"
# independent random streams of one batch
STREAMS = ("accounts", "latent", "observe", "oracle", "plays")


@dataclass
class SimulationSummary:
    """Row counts, realised 90-day rates over labelled (account, month start) pairs, time."""

    rows: dict[str, int] = field(default_factory=dict)
    pairs: int = 0
    churned: int = 0
    expanded: int = 0
    contracted: int = 0
    oracle_churn: float = 0.0
    seconds: float = 0.0

    def rate(self, count: int) -> float:
        return count / self.pairs if self.pairs else float("nan")

    def render(self) -> Table:
        """A rich table of what was written."""
        out = Table(title=f"simulated company ({self.seconds:.1f} s)")
        out.add_column("item")
        out.add_column("value", justify="right")
        for name, count in self.rows.items():
            out.add_row(f"{name} rows", f"{count:,}")
        out.add_row("labelled account-months", f"{self.pairs:,}")
        out.add_row("churn within 90 days", f"{self.rate(self.churned):.1%}")
        out.add_row("expansion within 90 days", f"{self.rate(self.expanded):.1%}")
        out.add_row("contraction within 90 days", f"{self.rate(self.contracted):.1%}")
        out.add_row("oracle mean p_churn", f"{self.oracle_churn / max(self.pairs, 1):.1%}")
        return out


def month_start_days(config: SimulationConfig) -> np.ndarray:
    """Day numbers of the month starts in [history start, end] (end itself is scored too)."""
    grid = pd.date_range(config.start_at, config.end_at, freq="MS")
    return ((grid - config.start_at) // pd.Timedelta(days=1)).to_numpy().astype(np.int64)


def _rng(config: SimulationConfig, batch: int, stream: str) -> np.random.Generator:
    seq = np.random.SeedSequence(config.seed, spawn_key=(batch, STREAMS.index(stream)))
    return np.random.default_rng(seq)


def simulate_batch(
    config: SimulationConfig,
    batch: int,
    *,
    first: int,
    n: int,
    plays: PlayAssigner | None = None,
) -> tuple[dict[str, pa.Table], History]:
    """Every table (and the oracle) for accounts first..first+n-1."""
    days = config.days
    clock = Clock(config.start_at, days)
    accounts, state = draw_accounts(
        first=first, n=n, days=days, rng=_rng(config, batch, "accounts")
    )
    history = run_history(
        accounts,
        state,
        days=days,
        month_days=month_start_days(config),
        rng=_rng(config, batch, "latent"),
        on_day=plays,
    )
    rng = _rng(config, batch, "observe")
    users = draw_users(history, rng)
    cal = Calendar.of(config.start_at, days)
    tables = {
        "accounts": accounts_table(history, clock=clock, rng=rng),
        "subscriptions": subscriptions_table(history, clock=clock),
        "users": users_table(history, users, clock=clock, rng=rng),
        "events": events_table(history, users, cal=cal, clock=clock, rng=rng),
        "integrations": integrations_table(history, clock=clock, rng=rng),
    }
    tables["tickets"], ticket_topics = tickets_table(
        history, clock=clock, rng=rng, topics=config.topics
    )
    tables["nps_responses"], comment_topics = nps_table(
        history, users, clock=clock, rng=rng, topics=config.topics
    )
    tables["invoices"] = invoices_table(history, clock=clock, rng=rng)
    tables["oracle"] = _oracle_table(history, clock=clock, rng=_rng(config, batch, "oracle"))
    tables["text_topics"] = pa.concat_tables([ticket_topics, comment_topics])
    return tables, history


def _oracle_table(history: History, *, clock: Clock, rng: np.random.Generator) -> pa.Table:
    probs = oracle_probabilities(history.snapshots, rng=rng)
    day = probs["day"].astype(np.int64)
    acct = probs["account"].astype(np.int64)
    order = np.lexsort((acct, day))
    return table(
        "oracle",
        {
            "account_id": account_ids(history.accounts.index[acct[order]]),
            "as_of": clock.ts(day[order] * 86_400_000_000),
            "p_churn": probs["p_churn"][order],
            "p_expand": probs["p_expand"][order],
            "p_contract": probs["p_contract"][order],
        },
    )


def _tally(
    summary: SimulationSummary, history: History, oracle: pa.Table, config: SimulationConfig
) -> None:
    """Realised 90-day outcomes of labelled (account, month start) pairs, from the history."""
    days = config.days
    snaps = [(d, idx) for d, idx, _ in history.snapshots if d + HORIZON_DAYS <= days]
    p_churn = oracle.column("p_churn").to_numpy()
    as_of = oracle.column("as_of").cast(pa.int64()).to_numpy()
    start_us = config.start_at.value // 1000
    labelled = (as_of - start_us) // 86_400_000_000 + HORIZON_DAYS <= days
    summary.oracle_churn += float(p_churn[labelled].sum())
    for name in ("churned", "expanded", "contracted"):
        flags = getattr(history, name)
        cum = np.vstack([np.zeros((1, flags.shape[1]), dtype=np.int64), np.cumsum(flags, axis=0)])
        hits = sum(int(((cum[d + HORIZON_DAYS, idx] - cum[d, idx]) > 0).sum()) for d, idx in snaps)
        setattr(summary, name, getattr(summary, name) + hits)
    summary.pairs += sum(idx.size for _, idx in snaps)


def write_company(
    out: Path, config: SimulationConfig, *, progress: Callable[[int], None] | None = None
) -> SimulationSummary:
    """Write every contract table, event_map.yaml, manifest.yaml and oracle.parquet into `out`."""
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    summary = SimulationSummary(rows=dict.fromkeys(SCHEMAS, 0))
    played = PlayRecords()
    writers = {
        name: pq.ParquetWriter(out / f"{name}.parquet", schema) for name, schema in SCHEMAS.items()
    }
    try:
        for batch, first in enumerate(range(0, config.accounts, BATCH_ACCOUNTS)):
            n = min(BATCH_ACCOUNTS, config.accounts - first)
            plays = batch_assigner(
                config.plays, _rng(config, batch, "plays"), month_start_days(config)
            )
            tables, history = simulate_batch(config, batch, first=first, n=n, plays=plays)
            if plays is not None:  # the plays table and their true effects, written at the end
                acc, clock = history.accounts, Clock(config.start_at, config.days)
                played.add(plays, index=acc.index, owner=acc.owner, clock=clock)
            for name, tab in tables.items():
                writers[name].write_table(tab)
                summary.rows[name] += tab.num_rows
            _tally(summary, history, tables["oracle"], config)
            if progress is not None:
                progress(first + n)
    finally:
        for writer in writers.values():
            writer.close()
    if config.plays is not None:
        played.write(out, config.plays)
    (out / EVENT_MAP_FILE).write_text(dump_event_map(DEMO_EVENT_MAP))
    (out / MANIFEST_FILE).write_text(yaml.safe_dump(_manifest(config), sort_keys=False))
    summary.seconds = time.perf_counter() - began
    return summary


def _manifest(config: SimulationConfig) -> dict[str, object]:
    extracted = config.end_at.tz_localize("UTC").isoformat()
    return {
        "extracted_at": extracted,
        "generator": GENERATOR,
        "seed": config.seed,
        "accounts": config.accounts,
        "months": config.months,
    }
