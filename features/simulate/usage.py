"""Product events: per user-day activity driven by health, season and the team's needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.event_map import DEMO_EVENT_MAP
from features.simulate.arrow import DAY_US, Clock, account_ids, table
from features.simulate.config import NOISE_EVENTS, PLAN_SEAT_LIMIT
from features.simulate.history import History
from features.simulate.latent import sigmoid
from features.simulate.people import Users

CORE = DEMO_EVENT_MAP.core_features
ADVANCED = tuple(e for e in DEMO_EVENT_MAP.advanced_features)
ADMIN = DEMO_EVENT_MAP.admin_events
INVITE = DEMO_EVENT_MAP.invite_events[0]
GATE = DEMO_EVENT_MAP.gate_events[0]
WORKSPACE = DEMO_EVENT_MAP.workspace_events[0]
METERED = set(DEMO_EVENT_MAP.metered_events)
# category order of the draw below; each names its pool of event names
POOLS: tuple[tuple[str, ...], ...] = (
    CORE,
    ADVANCED,
    ADMIN,
    (INVITE,),
    (GATE,),
    (WORKSPACE,),
    (NOISE_EVENTS[1],),
    (NOISE_EVENTS[2],),
)
NAMES: tuple[str, ...] = (NOISE_EVENTS[0], *(name for pool in POOLS for name in pool))
POOL_OFFSET = np.cumsum([1, *(len(p) for p in POOLS)])[:-1]
IS_METERED = np.array([name in METERED for name in NAMES])


@dataclass(frozen=True)
class Calendar:
    """Per simulated day: seasonal activity shift and the month it belongs to."""

    season: np.ndarray
    month: np.ndarray
    month_days: np.ndarray

    @classmethod
    def of(cls, start: pd.Timestamp, days: int) -> Calendar:
        dates = pd.date_range(start, periods=days, freq="D")
        weekend = dates.day_of_week.to_numpy() >= 5
        m, d = dates.month.to_numpy(), dates.day.to_numpy()
        summer = ((m == 7) & (d >= 15)) | (m == 8)
        holidays = ((m == 12) & (d >= 20)) | ((m == 1) & (d <= 2))
        season = -1.8 * weekend - 0.4 * summer - 0.9 * holidays
        month = (dates.year.to_numpy() - start.year) * 12 + m - start.month
        return cls(season.astype(np.float32), month, np.bincount(month))


def _active_cells(
    history: History, users: Users, cal: Calendar, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(user, day) of every user-day with any activity."""
    n_users, days = users.account.size, cal.season.size
    marks = np.zeros((n_users, days + 1), dtype=np.int8)
    # active from the day after provisioning until the day before leaving
    first = np.minimum(users.start + 1, users.end)
    marks[np.arange(n_users), first] += 1
    marks[np.arange(n_users), users.end] -= 1
    alive = np.cumsum(marks[:, :-1], axis=1, dtype=np.int8) > 0
    user, day = np.nonzero(alive)
    logit = history.health[day, users.account[user]] * np.float32(1.3)
    logit += (users.propensity[user] - 1.5).astype(np.float32) + cal.season[day]
    hit = rng.random(user.size, dtype=np.float32) < sigmoid(logit)
    return user[hit], day[hit]


def _weights(history: History, acct: np.ndarray, day: np.ndarray, admin: np.ndarray) -> np.ndarray:
    """(events, categories) unnormalised probabilities from the account's latent day."""
    h = history.health[day, acct].astype(np.float64)
    x = history.demand[day, acct] / history.seats[day, acct]
    plan = history.plan[day, acct]
    mature = _maturity(history, acct, day)
    ratio = np.clip(x, 0.0, 1.4) * sigmoid(0.5 + 1.2 * h)
    w = np.empty((acct.size, len(POOLS)))
    w[:, 0] = 1.0
    w[:, 1] = 0.05 + 0.6 * sigmoid(1.5 * h + 1.5 * mature - 1.5 + 0.5 * plan)
    w[:, 2] = 0.25 * admin
    w[:, 3] = 0.002 + 0.06 * np.maximum(0.0, x - 0.85)
    w[:, 4] = 0.005 + 0.1 * np.maximum(0.0, ratio - 0.8) + 0.02 * (plan == 0)
    w[:, 5] = 0.0015 * (1.0 + 4.0 * np.maximum(0.0, x - 1.0))
    w[:, 6] = 0.4
    w[:, 7] = 0.02 * (1.0 + 3.0 * history.episode[day, acct])
    return w


def _maturity(history: History, acct: np.ndarray, day: np.ndarray) -> np.ndarray:
    return np.clip((day - history.accounts.created_day[acct]) / 180.0, 0.0, 1.0)


def _pick(
    history: History, acct: np.ndarray, day: np.ndarray, admin: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Global event-name index of each (non-login) event."""
    w = _weights(history, acct, day, admin)
    cum = np.cumsum(w, axis=1)
    cat = (rng.random(acct.size)[:, None] * cum[:, -1:] >= cum).sum(axis=1)
    h = history.health[day, acct].astype(np.float64)
    mature = _maturity(history, acct, day)
    plan = history.plan[day, acct]
    # breadth and depth: healthier, more mature accounts use more of the catalogue
    n_core = 1 + np.floor(4.999 * sigmoid(1.5 * h + 2.0 * mature - 0.5))
    n_adv = 1 + np.floor(3.999 * sigmoid(1.5 * h + 1.5 * mature - 1.5 + 0.5 * plan))
    sizes = np.array([len(p) for p in POOLS], dtype=np.float64)[cat]
    sizes = np.where(cat == 0, n_core, np.where(cat == 1, n_adv, sizes))
    sub = np.floor(rng.random(acct.size) * sizes).astype(np.int64)
    return POOL_OFFSET[cat] + sub


def _quantities(
    history: History,
    acct: np.ndarray,
    day: np.ndarray,
    name: np.ndarray,
    cal: Calendar,
    rng: np.random.Generator,
) -> np.ndarray:
    """Metered events share the month's usage (limit x usage ratio); others count 1."""
    metered = IS_METERED[name]
    months = cal.month_days.size
    h = history.health.astype(np.float64)
    x = history.demand / history.seats
    limit = PLAN_SEAT_LIMIT[history.plan] * history.seats
    daily = (
        limit * np.clip(x, 0.0, 1.4) * sigmoid(0.5 + 1.2 * h) / cal.month_days[cal.month][:, None]
    )
    daily = np.where(history.active, daily, 0.0)
    n_acc = history.active.shape[1]
    key_grid = cal.month[:, None] * n_acc + np.arange(n_acc)[None, :]
    target = np.bincount(key_grid.ravel(), weights=daily.ravel(), minlength=months * n_acc)
    key = cal.month[day] * n_acc + acct
    count = np.bincount(key[metered], minlength=months * n_acc)
    share = target[key] / np.maximum(count[key], 1)
    noisy = np.maximum(1.0, np.round(share * rng.lognormal(0.0, 0.3, acct.size)))
    return np.where(metered, noisy, 1.0)


def events_table(
    history: History, users: Users, *, cal: Calendar, clock: Clock, rng: np.random.Generator
) -> pa.Table:
    """All tracked actions of a batch: a login per active user-day plus feature use."""
    user, day = _active_cells(history, users, cal, rng)
    acct = users.account[user]
    h = history.health[day, acct].astype(np.float64)
    extra = rng.poisson(np.exp(-0.1 + 0.35 * h + 0.25 * users.propensity[user]))
    cell = np.repeat(np.arange(user.size), 1 + extra)
    first = np.r_[True, cell[1:] != cell[:-1]]
    u, d, a = user[cell], day[cell], acct[cell]
    name = np.zeros(cell.size, dtype=np.int64)
    rest = ~first
    name[rest] = _pick(history, a[rest], d[rest], users.admin[u[rest]], rng)
    quantity = _quantities(history, a, d, name, cal, rng)
    t_us = d * DAY_US + rng.integers(6 * 3600, 22 * 3600, cell.size) * 1_000_000
    t_us[first] -= 60_000_000  # the login comes first
    order = np.lexsort((t_us, a))
    ids = pa.array(account_ids(history.accounts.index))
    return table(
        "events",
        {
            "account_id": _gather(ids, a[order]),
            "user_id": _gather(pa.array(users.ids, type=pa.string()), u[order]),
            "occurred_at": clock.ts(t_us[order]),
            "event": _gather(pa.array(NAMES, type=pa.string()), name[order]),
            "quantity": quantity[order],
        },
    )


def _gather(dictionary: pa.Array, index: np.ndarray) -> pa.Array:
    """dictionary[index] as a plain string array, without Python objects per row."""
    return pa.DictionaryArray.from_arrays(pa.array(index, type=pa.int32()), dictionary).cast(
        pa.string()
    )
