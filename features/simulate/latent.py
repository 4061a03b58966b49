"""The latent account process: one daily step shared by the history and the oracle."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from features.simulate.config import MODULE_SEAT_PRICE, PLAN_SEAT_LIMIT, PLAN_SEAT_PRICE

# Health is a latent index around 0 (sd ~1 across accounts); it mean-reverts to a target
# made of the account's base level, a decaying shock component and the champion gap.
HEALTH_PULL = 0.04
HEALTH_NOISE = 0.05
EMA_DAYS = 45.0
DIP_DECAY = float(np.exp(-1 / 40))
UNOWNED_DECAY = 0.25 / 365
CHAMP_LEAVE = 1 / 700
CHAMP_FIND = 1 / 90
CHAMP_GAP = 0.5
CHAMP_SHOCK = 0.6
EPISODE_HAZARD = 1 / 450
EPISODE_HEALTH = 0.6
EPISODE_SHOCK = 0.5
EPISODE_DAYS = (14, 45)
EPISODE_CAP = EPISODE_HAZARD * float(np.exp(EPISODE_HEALTH * 4.0))
# Team demand (people who would use the product) drifts with growth and health.
DEMAND_HEALTH = 0.12
DEMAND_NOISE = 0.006
# Decisions at renewal points: logits of churn by term length (0 = monthly).
CHURN_BASE = np.array([-4.75, -2.5, -2.75, -2.75])
CHURN_HEALTH = 1.4
CHURN_TREND = 3.0
CHURN_LOW_UTIL = 1.0
CYCLE_DAYS = 30
REACT_GAP = 45
REACT_HAZARD = 1 / 1000
MAX_MODULES = 5


@dataclass
class State:
    """Per-row latent and commercial state (one row per account, or per account-path)."""

    active: np.ndarray
    ever: np.ndarray
    owned: np.ndarray
    base: np.ndarray
    health: np.ndarray
    ema: np.ndarray
    dip: np.ndarray
    episode: np.ndarray
    champion: np.ndarray
    demand: np.ndarray
    growth: np.ndarray
    seats: np.ndarray
    plan: np.ndarray
    modules: np.ndarray
    discount: np.ndarray
    arr: np.ndarray
    years: np.ndarray
    next_dec: np.ndarray
    term_end: np.ndarray
    churn_day: np.ndarray

    def take(self, index: np.ndarray) -> State:
        """Rows at `index` (a copy)."""
        return State(**{f.name: getattr(self, f.name)[index].copy() for f in fields(self)})

    def copy(self) -> State:
        return replace(self, **{f.name: getattr(self, f.name).copy() for f in fields(self)})


@dataclass(frozen=True)
class Outcome:
    """What one daily step did per row."""

    churned: np.ndarray
    changed: np.ndarray
    delta: np.ndarray
    reactivated: np.ndarray
    bill: np.ndarray
    champion_left: np.ndarray


def arr_of(
    plan: np.ndarray, seats: np.ndarray, modules: np.ndarray, discount: np.ndarray
) -> np.ndarray:
    """ARR of the terms: seats x (plan seat price + module prices) x discount."""
    return np.round(seats * (PLAN_SEAT_PRICE[plan] + MODULE_SEAT_PRICE * modules) * discount, 2)


def usage_limit(plan: np.ndarray, seats: np.ndarray) -> np.ndarray:
    return seats * PLAN_SEAT_LIMIT[plan]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def step(s: State, day: int | np.ndarray, rng: np.random.Generator) -> Outcome:
    """Advance every row by one day in place: latent dynamics, then decisions due today."""
    n = s.active.shape[0]
    # Uniform innovations (scaled to unit variance) are much cheaper than normal draws,
    # and the health index averages them over weeks anyway.
    noise = rng.random((n,), dtype=np.float32) - np.float32(0.5)
    # One more uniform per row drives the rare daily events; their regions of [0, 1) are
    # disjoint (champion change near 0, episode start near 1, comeback in the middle).
    u = rng.random((n,), dtype=np.float32)
    act = s.active
    has = s.champion
    left = act & has & (u < CHAMP_LEAVE)
    found = act & ~has & (u < CHAMP_FIND)
    s.champion = (has & ~left) | found
    tail = 1.0 - u
    s.episode = np.maximum(s.episode - 1, 0)
    # the hazard is below EPISODE_CAP for any health above -4: test only those rows exactly
    maybe = np.flatnonzero(act & (tail < EPISODE_CAP) & (s.episode == 0))
    hazard: np.ndarray = EPISODE_HAZARD * np.exp(-EPISODE_HEALTH * s.health[maybe])
    started = maybe[tail[maybe] < hazard]
    if started.size:
        frac = tail[started] / hazard[tail[maybe] < hazard]
        s.episode[started] = EPISODE_DAYS[0] + frac * (EPISODE_DAYS[1] - EPISODE_DAYS[0])
        s.dip[started] -= EPISODE_SHOCK
    if left.any():
        s.dip[left] -= CHAMP_SHOCK
    s.dip *= DIP_DECAY
    s.base -= UNOWNED_DECAY * (act & ~s.owned)
    target = s.base + s.dip - CHAMP_GAP * ~s.champion
    s.health += HEALTH_PULL * (target - s.health) + (HEALTH_NOISE * 3.4641) * noise
    s.ema += (s.health - s.ema) / EMA_DAYS
    # daily rates are tiny: 1 + r is exp(r) to within 1e-6
    s.demand *= 1.0 + (s.growth + DEMAND_HEALTH * s.health) / 365
    np.clip(s.demand, 0.5, 5000.0, out=s.demand)
    churned = np.zeros(n, dtype=bool)
    changed = np.zeros(n, dtype=bool)
    delta = np.zeros(n)
    bill = np.zeros(n)
    due = act & ((s.next_dec == day) | ((s.years > 0) & (s.term_end == day)))
    idx = np.flatnonzero(due)
    if idx.size:
        sub = s.take(idx)
        res = _decide(sub, _rows(day, idx), rng.random((7, idx.size)))
        _put(s, idx, sub)
        churned[idx], changed[idx], delta[idx], bill[idx] = res
    back = ~act & (np.abs(u - 0.5) < REACT_HAZARD / 2)
    if back.any():
        back &= s.ever & (day - s.churn_day >= REACT_GAP)
    if back.any():
        bill = np.where(back, _reactivate(s, day, back), bill)
    return Outcome(churned, changed, delta, back, bill, left)


def _rows(day: int | np.ndarray, idx: np.ndarray) -> int | np.ndarray:
    """The day of each selected row (a shared int stays an int)."""
    return day[idx] if isinstance(day, np.ndarray) else day


def _put(s: State, idx: np.ndarray, sub: State) -> None:
    for f in fields(s):
        getattr(s, f.name)[idx] = getattr(sub, f.name)


def _decide(
    s: State, day: int | np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decisions of rows due today (a subset, updated in place): churn, changed, delta, bill."""
    monthly = s.years == 0
    renew = monthly | (s.term_end == day)
    x = s.demand / s.seats
    h = s.health
    logit = CHURN_BASE[s.years] - CHURN_HEALTH * h - CHURN_TREND * (h - s.ema)
    churn = renew & (u[0] < sigmoid(logit + CHURN_LOW_UTIL * (x < 0.5)))
    stay = ~churn
    grow_logit = np.where(renew, -1.0 + 4.0 * (x - 1.0), -2.2 + 4.0 * (x - 1.1)) + 0.8 * h
    grow = stay & (x > np.where(renew, 0.95, 1.1)) & (u[1] < sigmoid(grow_logit))
    module = stay & renew & ~grow & (s.plan > 0) & (s.modules < MAX_MODULES)
    module &= u[2] < sigmoid(-3.5 + 1.0 * h)
    shrink = stay & renew & ~grow & ~module & (x < 0.7)
    shrink &= u[3] < sigmoid(-1.1 + 6.0 * (0.7 - x) - 0.5 * h)
    old_arr = s.arr
    _apply_terms(s, grow=grow, shrink=shrink, module=module, u=u[4:7])
    s.term_end = np.where(renew & ~monthly, s.term_end + 365 * s.years, s.term_end)
    s.next_dec = np.asarray(day + CYCLE_DAYS + np.zeros_like(s.next_dec))
    s.active = ~churn
    s.churn_day = np.where(churn, day, s.churn_day)
    changed = (renew & stay & ~monthly) | grow | module | shrink
    delta = np.where(changed, s.arr - old_arr, 0.0)
    remaining = np.maximum(s.term_end - day, 0) / 365
    amount = np.where(monthly & stay, s.arr / 12, 0.0)
    amount = np.where(~monthly & renew & stay, s.arr * s.years, amount)
    amount = np.where(~monthly & ~renew & (delta > 0), delta * remaining, amount)
    return churn, changed, delta, np.round(amount, 2)


def _apply_terms(
    s: State, *, grow: np.ndarray, shrink: np.ndarray, module: np.ndarray, u: np.ndarray
) -> None:
    up_seats = np.ceil(s.demand * (1.1 + 0.25 * u[0]))
    down_seats = np.maximum(1.0, np.ceil(s.demand * 1.1))
    s.seats = np.where(grow, np.maximum(up_seats, s.seats + 1), s.seats)
    s.seats = np.where(shrink, np.minimum(down_seats, s.seats - 1).clip(1.0), s.seats)
    upgrade = grow & (s.plan < 2) & (u[1] < np.where(s.plan == 0, 0.3, 0.1))
    s.plan = s.plan + upgrade
    drop = shrink & (s.modules > 0) & (u[2] < 0.3)
    s.modules = s.modules + module - drop
    s.arr = arr_of(s.plan, s.seats, s.modules, s.discount)


def _reactivate(s: State, day: int | np.ndarray, back: np.ndarray) -> np.ndarray:
    """Bring churned rows back on fresh terms (a new relationship); returns their bill."""
    idx = np.flatnonzero(back)
    when = _rows(day, idx)
    s.active[idx] = True
    s.dip[idx] = 0.0
    s.base[idx] += 0.4
    s.health[idx] = s.base[idx]
    s.ema[idx] = s.base[idx]
    s.seats[idx] = np.maximum(1.0, np.ceil(s.demand[idx] * 1.1))
    s.arr[idx] = arr_of(s.plan[idx], s.seats[idx], s.modules[idx], s.discount[idx])
    s.next_dec[idx] = when + CYCLE_DAYS
    annual = s.years[idx] > 0
    s.term_end[idx[annual]] = (when + 365 * s.years[idx])[annual]
    bill = np.zeros(back.size)
    bill[idx] = np.round(np.where(annual, s.arr[idx] * s.years[idx], s.arr[idx] / 12), 2)
    return bill
