"""Draw a batch of accounts and run their latent history day by day."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from features.simulate.config import CSM_OWNERS, SEGMENT_SHARE
from features.simulate.latent import CYCLE_DAYS, Outcome, State, arr_of, step

DAY_US = 86_400_000_000
PRE_EXISTING_SHARE = 0.45
# per segment (SMB, Mid-Market, Enterprise)
TEAM_MEDIAN = np.array([4.0, 14.0, 45.0])
PLAN_MIX = np.array([[0.7, 0.3, 0.0], [0.15, 0.75, 0.1], [0.0, 0.3, 0.7]])
TERM_MIX = np.array([[0.85, 0.15, 0.0, 0.0], [0.3, 0.65, 0.05, 0.0], [0.0, 0.65, 0.2, 0.15]])
OWNED = np.array([0.25, 0.8, 0.97])
ICP_SHARE = (0.35, 0.45, 0.2)
ICP_HEALTH = np.array([0.45, 0.0, -0.55])
ONBOARDING_FAIL = np.array([0.12, 0.2, 0.35])


@dataclass(frozen=True)
class Accounts:
    """Static attributes of a batch of accounts."""

    index: np.ndarray  # global account number
    segment: np.ndarray
    icp: np.ndarray
    owner: np.ndarray  # index into CSM_OWNERS, -1 = unowned
    created_day: np.ndarray  # negative: a customer before history start
    offset_us: np.ndarray  # time of day of this account's commercial changes


@dataclass(frozen=True)
class History:
    """Daily latent paths ([day, account]) and the commercial records of a batch."""

    accounts: Accounts
    health: np.ndarray
    active: np.ndarray
    demand: np.ndarray
    seats: np.ndarray
    plan: np.ndarray
    champion: np.ndarray
    champion_left: np.ndarray
    episode: np.ndarray
    churned: np.ndarray
    expanded: np.ndarray
    contracted: np.ndarray
    periods: dict[str, np.ndarray]
    bills: dict[str, np.ndarray]
    snapshots: list[tuple[int, np.ndarray, State]]


def draw_accounts(
    *, first: int, n: int, days: int, rng: np.random.Generator
) -> tuple[Accounts, State]:
    """Static attributes and the initial latent state of accounts first..first+n-1."""
    seg = rng.choice(3, size=n, p=SEGMENT_SHARE)
    icp = rng.choice(3, size=n, p=ICP_SHARE)
    owned = rng.random(n) < OWNED[seg]
    owner = np.where(owned, rng.integers(0, len(CSM_OWNERS), n), -1)
    pre = rng.random(n) < PRE_EXISTING_SHARE
    # new customers arrive a little faster later in the history (the company grows)
    new_day = np.floor(days * rng.random(n) ** 0.85).astype(np.int64).clip(0, days - 1)
    created = np.where(pre, -rng.integers(30, 1200, n), new_day)
    failed = rng.random(n) < ONBOARDING_FAIL[icp]
    base = rng.normal(0.0, 0.55, n) + ICP_HEALTH[icp] + 0.15 * owned - 1.0 * failed
    health = base + rng.normal(0.0, 0.25, n)
    terms = _draw_terms(seg, pre=pre, created=created, rng=rng)
    state = State(
        active=pre.copy(),
        ever=pre.copy(),
        owned=owned,
        base=base.astype(np.float32),
        health=health.astype(np.float32),
        ema=health.astype(np.float32),
        dip=np.zeros(n, dtype=np.float32),
        episode=np.zeros(n, dtype=np.int64),
        champion=rng.random(n) < 0.85,
        growth=rng.normal(0.12, 0.25, n).astype(np.float32),
        churn_day=np.full(n, -(10**6), dtype=np.int64),
        **terms,
    )
    offset = rng.integers(3600, 20 * 3600, n) * 1_000_000
    accounts = Accounts(np.arange(first, first + n), seg, icp, owner, created, offset)
    return accounts, state


def _draw_terms(
    seg: np.ndarray, *, pre: np.ndarray, created: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Team demand and the first contract terms; customers from before history mid-term."""
    n = seg.size
    demand = TEAM_MEDIAN[seg] * rng.lognormal(0.0, 0.5, n)
    seats = np.ceil(demand * rng.uniform(1.0, 1.4, n))
    plan = _choose_rows(PLAN_MIX[seg], rng)
    years = _choose_rows(TERM_MIX[seg], rng)
    modules = np.where(plan == 2, 2, np.where(plan == 1, rng.integers(0, 2, n), 0))
    modules = modules + (plan == 2) * rng.integers(0, 2, n)
    discount = rng.uniform(0.75, 1.0, n)
    next_dec = np.where(pre, rng.integers(1, CYCLE_DAYS + 1, n), created + CYCLE_DAYS)
    term_len = 365 * years
    term_end = np.where(pre, rng.integers(1, np.maximum(term_len, 1) + 1), created + term_len)
    return {
        "demand": demand.astype(np.float32),
        "seats": seats,
        "plan": plan,
        "modules": modules.astype(np.int64),
        "discount": discount,
        "arr": arr_of(plan, seats, modules, discount),
        "years": years,
        "next_dec": next_dec.astype(np.int64),
        "term_end": np.where(years == 0, -1, term_end).astype(np.int64),
    }


def _choose_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of a (rows, k) probability matrix."""
    cum = probs.cumsum(axis=1)
    u = rng.random((probs.shape[0], 1))
    return np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1).astype(np.int64)


DAILY_BOOL = ("active", "champion", "episode", "left", "churned", "expanded", "contracted")
DAILY_FLOAT = ("health", "demand", "seats")
PERIOD_KEYS = ("account", "t_us", "start", "arr", "plan", "seats", "modules", "renewal_day")


class _Recorder:
    """Collects the daily latent matrices, period starts/ends and bills, day by day."""

    def __init__(self, days: int, n: int) -> None:
        self.daily = {k: np.zeros((days, n), dtype=bool) for k in DAILY_BOOL}
        self.daily |= {k: np.zeros((days, n), dtype=np.float32) for k in DAILY_FLOAT}
        self.daily["plan"] = np.zeros((days, n), dtype=np.int8)
        self.periods: list[dict[str, np.ndarray]] = []
        self.bills: list[dict[str, np.ndarray]] = []

    def day(self, day: int, s: State, out: Outcome) -> None:
        d = self.daily
        d["active"][day], d["champion"][day], d["episode"][day] = (
            s.active,
            s.champion,
            s.episode > 0,
        )
        d["left"][day], d["churned"][day] = out.champion_left, out.churned
        d["expanded"][day] = out.changed & (out.delta > 0)
        d["contracted"][day] = out.changed & (out.delta < 0)
        d["health"][day], d["demand"][day], d["seats"][day] = s.health, s.demand, s.seats
        d["plan"][day] = s.plan

    def period(self, idx: np.ndarray, t_us: np.ndarray, s: State, *, start: bool) -> None:
        if idx.size == 0:
            return
        renewal = np.where(s.years[idx] == 0, -1, s.term_end[idx])
        self.periods.append(
            {
                "account": idx,
                "t_us": t_us,
                "start": np.full(idx.size, start),
                "arr": s.arr[idx],
                "plan": s.plan[idx],
                "seats": s.seats[idx],
                "modules": s.modules[idx],
                "renewal_day": renewal,
            }
        )

    def bill(self, idx: np.ndarray, day: int, amount: np.ndarray) -> None:
        if idx.size:
            self.bills.append({"account": idx, "day": np.full(idx.size, day), "amount": amount})

    @staticmethod
    def stack(parts: list[dict[str, np.ndarray]], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        if not parts:
            return {k: np.zeros(0) for k in keys}
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}

    def history(
        self, accounts: Accounts, snapshots: list[tuple[int, np.ndarray, State]]
    ) -> History:
        d = self.daily
        return History(
            accounts=accounts,
            health=d["health"],
            active=d["active"],
            demand=d["demand"],
            seats=d["seats"],
            plan=d["plan"],
            champion=d["champion"],
            champion_left=d["left"],
            episode=d["episode"],
            churned=d["churned"],
            expanded=d["expanded"],
            contracted=d["contracted"],
            periods=self.stack(self.periods, PERIOD_KEYS),
            bills=self.stack(self.bills, ("account", "day", "amount")),
            snapshots=snapshots,
        )


def _open(born: np.ndarray, day: int, t_us: np.ndarray, state: State, rec: _Recorder) -> None:
    """New customers start their first period (and are billed) at their creation time."""
    state.active[born] = True
    state.ever[born] = True
    rec.period(born, t_us[born], state, start=True)
    first = np.where(state.years[born] == 0, 1 / 12, state.years[born])
    rec.bill(born, day, np.round(state.arr[born] * first, 2))


def run_history(
    accounts: Accounts,
    state: State,
    *,
    days: int,
    month_days: np.ndarray,
    rng: np.random.Generator,
    on_day: Callable[[int, State], None] | None = None,
) -> History:
    """Step the batch through every day of the history, recording what is observable.

    `on_day(day, state)` runs at the start of each day, after the month-start snapshot and
    before the day's step (the simulated plays use it, features/simulate/interventions.py).
    """
    rec = _Recorder(days, state.active.shape[0])
    snapshots: list[tuple[int, np.ndarray, State]] = []
    months = set(month_days.tolist())
    pre = np.flatnonzero(state.active)
    rec.period(pre, np.zeros(pre.size, dtype=np.int64), state, start=True)
    for day in range(days + 1):
        if day in months:
            # the oracle starts from the state at 00:00, before the day's decisions
            live = np.flatnonzero(state.active)
            snapshots.append((day, live, state.take(live)))
        if day == days:
            break
        if on_day is not None:
            on_day(day, state)
        out = step(state, day, rng)
        t_us = day * DAY_US + accounts.offset_us
        rec.period(np.flatnonzero(out.churned), t_us[out.churned], state, start=False)
        opened = out.changed | out.reactivated
        rec.period(np.flatnonzero(opened), t_us[opened], state, start=True)
        billed = np.flatnonzero(out.bill > 0)
        rec.bill(billed, day, out.bill[billed])
        born = np.flatnonzero(accounts.created_day == day)
        if born.size:
            _open(born, day, t_us, state, rec)
        rec.day(day, state, out)
    return rec.history(accounts, snapshots)
