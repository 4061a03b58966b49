"""The oracle: true 90-day churn/expansion/contraction probabilities from the latent state.

Monte Carlo continuations of the very same daily `step` used for the history, started
from each account's state at each month start (before that day's decisions, i.e. at
00:00), so the events counted are exactly those the labels see in [as_of, as_of + 90d).
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from features.simulate.config import HORIZON_DAYS, ORACLE_PATHS
from features.simulate.latent import State, step

CHUNK_ROWS = 200_000


def stack_states(parts: list[State]) -> State:
    """One State holding the rows of all parts, in order."""
    return State(
        **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(State)}
    )


def oracle_probabilities(
    snapshots: list[tuple[int, np.ndarray, State]],
    *,
    rng: np.random.Generator,
    paths: int = ORACLE_PATHS,
    horizon: int = HORIZON_DAYS,
) -> dict[str, np.ndarray]:
    """account (batch row), day, p_churn, p_expand, p_contract for every snapshot row."""
    keys = ("account", "day", "p_churn", "p_expand", "p_contract")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    group: list[tuple[int, np.ndarray, State]] = []
    rows = 0
    for snap in [*snapshots, None]:
        if (
            snap is not None
            and rows + snap[1].size * paths <= CHUNK_ROWS
            or (snap is not None and not group)
        ):
            group.append(snap)
            rows += snap[1].size * paths
            continue
        if group:
            _run_group(group, rng=rng, paths=paths, horizon=horizon, out=out)
        group, rows = ([snap], snap[1].size * paths) if snap is not None else ([], 0)
    if not out["account"]:
        return {k: np.zeros(0) for k in keys}
    return {k: np.concatenate(v) for k, v in out.items()}


def _run_group(
    group: list[tuple[int, np.ndarray, State]],
    *,
    rng: np.random.Generator,
    paths: int,
    horizon: int,
    out: dict[str, list[np.ndarray]],
) -> None:
    days = np.concatenate([np.full(idx.size, day, dtype=np.int64) for day, idx, _ in group])
    accounts = np.concatenate([idx for _, idx, _ in group])
    if accounts.size == 0:
        return
    start = stack_states([s for _, _, s in group])
    rows = np.repeat(np.arange(accounts.size), paths)
    state = start.take(rows)
    day0 = days[rows]
    churn = np.zeros(rows.size, dtype=bool)
    grow = np.zeros(rows.size, dtype=bool)
    shrink = np.zeros(rows.size, dtype=bool)
    for k in range(horizon):
        res = step(state, day0 + k, rng)
        churn |= res.churned
        grow |= res.changed & (res.delta > 0)
        shrink |= res.changed & (res.delta < 0)
    for name, hits in (("p_churn", churn), ("p_expand", grow), ("p_contract", shrink)):
        out[name].append(hits.reshape(-1, paths).mean(axis=1))
    out["account"].append(accounts)
    out["day"].append(days)
