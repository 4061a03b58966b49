"""Point-in-time account snapshots: features (and labels) for every spine row.

Engine. Every feature is SQL run by DuckDB over the source's typed views; pandas only
merges the per-family results (one row per spine row). The events are scanned once per
build and pre-aggregated to daily grain (per account/user/day, and per account/event/day
for names with a role), each row tagged with its account's partition. Per partition the
engine then stages the spine, its as_of grid, the partition's daily rows and two window
tables - per (snapshot, user) and per (snapshot, role event) counts over the 7/14/30/60/90
day windows (see features/builders/context.py). The window tables join the daily rows to
the small grid with the half-open predicate (`day < as_of AND day >= as_of - INTERVAL 'n'
DAY`), so each daily row meets only the few snapshots whose window covers it, and every
builder reads them instead of re-joining the daily rows; all-history features (last
activity, first use) use a running window function or a MIN, not a join per snapshot.
Why this shape: a pandas groupby per as_of would load all events and loop over dates;
joining the raw events straight to the spine (the benchmark's reference query) is the
fastest way to get four features but re-reads the events per feature family, while here
the one scan is shared by every feature family. benchmarks/bench_snapshots.py measures
the full build against that reference query (wall time and peak memory, same spine).
Scanning the events once per partition instead would repeat the costliest step per
partition: the raw read and cast dominate, whatever the filter. Only portable SQL is
used - CTEs, CASE, COUNT(DISTINCT), window functions, `INTERVAL 'n' DAY`, `EXTRACT(EPOCH
FROM ...)`, `PERCENTILE_CONT ... WITHIN GROUP`, TIMESTAMP literals - so the statements
could run on a warehouse (Postgres, Snowflake; BigQuery with minor dialect changes); the
engine-specific steps are registering pandas frames and temporary tables, which any
warehouse client offers. The source's engine (features/engine) owns those steps: DuckDB
runs the statements as written, Spark runs each one translated by
features/engine/translate.py and stages the temporary tables as cached views. Memory stays bounded: accounts are split into P partitions by a
stable hash of account_id, P from the event count (about EVENTS_PER_PARTITION events
each); the shared daily tables live in DuckDB, whose memory limit makes it spill.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce

import pandas as pd

from features.builders import (
    adoption,
    commercial,
    gates,
    integrations,
    people,
    support,
    usage,
    voice,
)
from features.builders.context import BuildContext
from features.config import SnapshotConfig
from features.labels import build_labels
from features.registry import BY_NAME, FEATURES, INFO_COLUMNS, KEY_COLUMNS
from features.source import DataSource
from features.spine import check_spine
from features.sql import period_at

KEYS = list(KEY_COLUMNS)
EVENTS_PER_PARTITION = 8_000_000
BUILDERS: tuple[Callable[[BuildContext], pd.DataFrame], ...] = (
    usage.build,
    adoption.build,
    people.build,
    integrations.build,
    support.build,
    voice.build,
    commercial.build,
    gates.build,
)
Progress = Callable[[int, int], None]


def build_snapshots(
    *,
    source: DataSource,
    spine: pd.DataFrame,
    config: SnapshotConfig,
    progress: Progress | None = None,
    partitions: int | None = None,
) -> pd.DataFrame:
    """Features and labels for every spine row (min_tenure_days applied), keyed and sorted."""
    spine = _apply_min_tenure(source, check_spine(spine), config.min_tenure_days)
    features = build_features(
        source=source, spine=spine, config=config, progress=progress, partitions=partitions
    )
    labels = build_labels(source=source, spine=spine, config=config)
    return features.merge(labels, on=KEYS, how="left", validate="1:1")


def build_features(
    *,
    source: DataSource,
    spine: pd.DataFrame,
    config: SnapshotConfig,
    progress: Progress | None = None,
    partitions: int | None = None,
) -> pd.DataFrame:
    """Keys, INFO_COLUMNS and every feature computable from this source, per spine row."""
    spine = check_spine(spine)
    n_parts = partitions or partition_count(source, spine)
    parted = spine.assign(part=_partition_of(spine["account_id"], n_parts))
    frames = []
    with _staged_events(source, parted) as shared:
        for i in range(n_parts):
            with _staged_partition(source, config, shared, i) as ctx:
                frames.append(_build_partition(ctx))
            if progress is not None:
                progress(i + 1, n_parts)
    combined = pd.concat(frames, ignore_index=True)
    ordered = spine.merge(combined, on=KEYS, how="left", validate="1:1")
    return _finalise(ordered)


def partition_count(source: DataSource, spine: pd.DataFrame) -> int:
    """How many account partitions keep each staged slice of events small."""
    if not source.engine.splits_builds:
        return 1
    row = source.engine.rows("SELECT COUNT(*) FROM events")[0]
    n_events = int(row[0]) if row else 0
    accounts = max(1, spine["account_id"].nunique())
    return max(1, min(accounts, math.ceil(n_events / EVENTS_PER_PARTITION)))


def _partition_of(account_id: pd.Series, n_parts: int) -> pd.Series:
    # A stable hash (fixed key), so an account always lands in the same partition.
    hashed = pd.util.hash_pandas_object(account_id, index=False).to_numpy()
    return pd.Series(hashed % n_parts, index=account_id.index)


def _build_partition(ctx: BuildContext) -> pd.DataFrame:
    parts = [_info(ctx)] + [builder(ctx) for builder in BUILDERS]
    for part in parts:
        unknown = set(part.columns) - set(BY_NAME) - set(INFO_COLUMNS) - set(KEYS)
        if unknown:
            raise RuntimeError(f"builder produced columns outside the registry: {unknown}")
    return reduce(lambda a, b: a.merge(b, on=KEYS, how="left", validate="1:1"), parts)


def _info(ctx: BuildContext) -> pd.DataFrame:
    # csm_owner: the accounts table holds only today's owner, so that is what is shown.
    return ctx.sql(f"""
        SELECT s.account_id, s.as_of, a.csm_owner, p.renewal_at
        FROM {ctx.spine} s
        LEFT JOIN accounts a ON a.account_id = s.account_id
        LEFT JOIN ({period_at(ctx.spine)}) p ON p.account_id = s.account_id AND p.as_of = s.as_of
    """)


def _finalise(frame: pd.DataFrame) -> pd.DataFrame:
    out: dict[str, pd.Series] = {
        "account_id": frame["account_id"].astype("string"),
        "as_of": frame["as_of"].astype("datetime64[us]"),
        "csm_owner": frame["csm_owner"].astype("string"),
        "renewal_at": pd.to_datetime(frame["renewal_at"]).astype("datetime64[us]"),
    }
    for feature in FEATURES:
        if feature.name not in frame.columns:
            continue
        values = frame[feature.name]
        if feature.kind == "category":
            out[feature.name] = values.astype("string")
        else:
            out[feature.name] = pd.to_numeric(values).astype("float64")
    return pd.DataFrame(out)


def _apply_min_tenure(source: DataSource, spine: pd.DataFrame, min_days: int) -> pd.DataFrame:
    if min_days <= 0:
        return spine
    created = source.sql("SELECT account_id, created_at FROM accounts")
    created = created.assign(account_id=created["account_id"].astype("string"))
    joined = spine.merge(created, on="account_id", how="left")
    keep = (joined["as_of"] - joined["created_at"]) >= pd.Timedelta(days=min_days)
    return spine[keep.to_numpy()].reset_index(drop=True)


@dataclass(frozen=True)
class _Shared:
    """Names of the relations staged once for all partitions."""

    tag: str
    spine: str
    roles: str
    user_day: str
    event_day: str
    last_as_of: pd.Timestamp


@contextmanager
def _staged_events(source: DataSource, parted: pd.DataFrame) -> Iterator[_Shared]:
    """Stage the events once, at daily grain and tagged with their account's partition."""
    # One scan of the events for the whole build: reading and casting the raw table costs
    # about the same whatever the filter, so scanning once per partition multiplied it.
    tag = f"_nrr_{uuid.uuid4().hex[:8]}"
    last = parted["as_of"].max() if len(parted) else pd.Timestamp("1970-01-01")
    shared = _Shared(
        tag, f"{tag}_spine_df", f"{tag}_roles", f"{tag}_user_day", f"{tag}_event_day", last
    )
    roles = pd.DataFrame(
        [(role, str(event)) for role, names in source.event_map.roles().items() for event in names],
        columns=["role", "event"],
    ).astype("string")
    engine = source.engine
    engine.register(shared.spine, parted.reset_index(drop=True))
    engine.register(f"{tag}_roles_df", roles)
    try:
        for name, select in _shared_sql(shared):
            engine.create(name, select)
        yield shared
    finally:
        for table in (shared.user_day, shared.event_day, shared.roles, f"{tag}_parts"):
            engine.drop(table)
        engine.unregister(shared.spine)
        engine.unregister(f"{tag}_roles_df")


def _shared_sql(shared: _Shared) -> list[tuple[str, str]]:
    """(table, SELECT) pairs staged once per build, in order."""
    tag = shared.tag
    day = "CAST(CAST(e.occurred_at AS DATE) AS TIMESTAMP)"
    # Events at or after the last as_of can never enter a feature. (A literal bound: a
    # scalar subquery here made DuckDB materialise the whole join and run out of memory.)
    scope = f"e.occurred_at < {_timestamp_literal(shared.last_as_of)}"
    parts = f"JOIN {tag}_parts p ON p.account_id = e.account_id"
    return [
        (
            f"{tag}_parts",
            f"SELECT account_id, MIN(part) AS part FROM {shared.spine} GROUP BY account_id",
        ),
        (shared.roles, f"SELECT DISTINCT role, event FROM {tag}_roles_df"),
        (
            shared.user_day,
            f"""SELECT p.part, e.account_id, e.user_id, {day} AS day, COUNT(*) AS n
            FROM events e {parts} WHERE {scope}
            GROUP BY p.part, e.account_id, e.user_id, {day}""",
        ),
        (
            shared.event_day,
            f"""SELECT p.part, e.account_id, e.event, {day} AS day, COUNT(*) AS n,
                SUM(e.quantity) AS qty
            FROM events e {parts}
            WHERE {scope} AND e.event IN (SELECT event FROM {shared.roles})
            GROUP BY p.part, e.account_id, e.event, {day}""",
        ),
    ]


@contextmanager
def _staged_partition(
    source: DataSource, config: SnapshotConfig, shared: _Shared, part: int
) -> Iterator[BuildContext]:
    """Stage one partition's spine, grid and daily event rows; drop them after."""
    tag = f"{shared.tag}_p{part}"
    ctx = BuildContext(
        source=source,
        config=config,
        spine=f"{tag}_spine",
        grid=f"{tag}_grid",
        user_day=f"{tag}_user_day",
        event_day=f"{tag}_event_day",
        roles=shared.roles,
        account_day=f"{tag}_account_day",
        user_window=f"{tag}_user_window",
        event_window=f"{tag}_event_window",
    )
    # Daily rows strictly before the partition's last as_of: a day equal to an as_of
    # holds events at or after it.
    engine = source.engine
    last = engine.rows(f"SELECT MAX(as_of) FROM {shared.spine} WHERE part = {int(part)}")[0][0]
    recent = "FALSE" if last is None else f"day < {_timestamp_literal(pd.Timestamp(last))}"
    staged = [
        (ctx.spine, f"SELECT account_id, as_of FROM {shared.spine} WHERE part = {int(part)}"),
        (ctx.grid, f"SELECT DISTINCT as_of FROM {ctx.spine}"),
        (
            ctx.user_day,
            f"""SELECT account_id, user_id, day, n
            FROM {shared.user_day} WHERE part = {int(part)} AND {recent}""",
        ),
        (
            ctx.event_day,
            f"""SELECT account_id, event, day, n, qty
            FROM {shared.event_day} WHERE part = {int(part)} AND {recent}""",
        ),
        (
            ctx.account_day,
            f"""SELECT account_id, day, SUM(n) AS n
            FROM {ctx.user_day} GROUP BY account_id, day""",
        ),
        (ctx.user_window, ctx.user_window_sql()),
        (ctx.event_window, ctx.event_window_sql()),
    ]
    # An engine that builds unsplit (Spark) has one partition holding all the shared daily
    # rows: a view over them, not a second staged copy (a full pass over the two largest
    # staged tables, and twice their memory).
    views = set() if engine.splits_builds else {ctx.user_day, ctx.event_day}
    try:
        for name, select in staged:
            engine.create(name, select, kind="view" if name in views else "temp")
        yield ctx
    finally:
        windows = (ctx.user_window, ctx.event_window, ctx.account_day)
        for table in (*windows, ctx.user_day, ctx.event_day, ctx.grid, ctx.spine):
            engine.drop(table, kind="view" if table in views else "table")


def _timestamp_literal(ts: pd.Timestamp) -> str:
    return f"TIMESTAMP '{ts.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
