"""A second, independent SaaS company generator, to judge the product on data it never saw.

Why: every "unseen company" check so far used the project's own simulator with another seed,
so the product could be fitting that generator's quirks. This script shares no code with
features/simulate/ and uses other names, sizes and dynamics:

- each account has a hidden, persistent churn propensity (lognormal) that shows only
  partly in behaviour (it raises the hazard of entering a decline phase, ticket volume and
  lowers sentiment/NPS a little);
- engagement = onboarding ramp x exp(random-walk drift - decline depth); a decline phase
  starts at a random time and deepens day by day, so usage, admin activity, integrations
  and ticket sentiment fall weeks before the churn it makes likely;
- monthly contracts can churn at every 30-day cycle, annual ones only at renewal, plus
  rare mid-term termination after a failed, unpaid invoice;
- expansion = seat true-ups when the team outgrows its seats (invites), plan upgrades
  driven by an unmet need for higher-tier features (gate events show it);
- usage has weekends, a December dip and a quieter August.

The latent state is Markov: its future from a day depends only on that day's state and
fresh random draws, and `step` is the one transition used both for the realised history
and for the oracle, which runs K future paths of 90 days from every account's state at
every month start. So p_churn / p_expand are faithful Monte Carlo estimates of the label
definitions (churn = last period ends in [as_of, as_of + 90d); no account ever returns, so
the 30-day grace window never joins periods; expansion = a period with higher ARR starts
in the window).

Usage: python experiments/other_company.py --out DIR --accounts N --months M --seed S
writes DIR/*.parquet, DIR/event_map.yaml, DIR/manifest.yaml and DIR-oracle.parquet.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HORIZON_DAYS = 90
MONTHLY_CYCLE = 30
ANNUAL_TERM = 365
PLANS = ("Basic", "Team", "Business")
SEAT_PRICE = np.array([16.0, 32.0, 58.0])  # per seat per month
USAGE_LIMIT = np.array([4_000.0, 20_000.0, 100_000.0])  # api units per month
SEGMENTS = ("Startup", "Scale-up", "Corporate")
SEGMENT_SHARE = (0.55, 0.30, 0.15)
INDUSTRIES = ("Media", "Healthcare", "Logistics", "Education", "Retail", "Software")
CHANNELS = ("Inbound", "Partner", "Outbound", "Marketplace")
INTEGRATIONS = ("Slack", "Google Drive", "Jira", "Salesforce", "Zapier", "GitHub", "Okta")
OWNERS = ("Ana Ruiz", "Ben Okafor", "Chloe Martin", "Dev Patel")

EVENT_MAP = {
    "core_features": [
        "doc_opened",
        "doc_edited",
        "board_viewed",
        "comment_posted",
        "file_uploaded",
    ],
    "advanced_features": ["automation_built", "api_request", "formula_used", "pdf_exported"],
    "admin_events": ["sso_configured", "role_changed", "billing_updated", "member_removed"],
    "invite_events": ["member_invited"],
    "gate_events": ["upgrade_prompt_shown", "seat_limit_reached"],
    "metered_events": ["api_request", "file_uploaded"],
    "workspace_events": ["space_created"],
}
# Everyday actions of an active user: names and weights per plan tier (unmapped names too).
ACTIONS = ("doc_opened", "doc_edited", "board_viewed", "comment_posted", "file_uploaded",
           "automation_built", "api_request", "formula_used", "pdf_exported",
           "login", "notification_clicked")  # fmt: skip
ACTION_WEIGHTS = np.array(
    [
        [30, 14, 16, 8, 6, 0.5, 1.0, 2.0, 0.5, 14, 8],
        [28, 14, 15, 9, 6, 2.5, 3.0, 4.0, 1.5, 12, 6],
        [26, 13, 14, 9, 6, 4.0, 6.0, 5.0, 3.0, 10, 5],
    ]
)
ADMIN_ACTIONS = ("role_changed", "billing_updated", "sso_configured")

State = dict[str, np.ndarray]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def arr_of(s: State) -> np.ndarray:
    return s["seats"] * SEAT_PRICE[s["tier"]] * 12.0 * s["discount"]


def ramp(age: np.ndarray) -> np.ndarray:
    """Onboarding: engagement builds up over the first couple of months."""
    return 1.0 - np.exp(-(age + 1.0) / 40.0)


def step(s: State, t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One day of the latent process, in place; what happened that day (per path).

    The only transition of the model: the history and the oracle's future paths both run it,
    so the oracle's probabilities are those of the process that wrote the data.
    """
    n = s["alive"].size
    alive = s["alive"].copy()
    old_arr = arr_of(s)
    monthly = s["monthly"]
    users, seats, tier, need = s["users"], s["seats"], s["tier"], s["need"]

    # -- contract cycle: churn decision, then new terms for the survivors
    cycle = alive & (s["next_cycle"] == t)
    risk = (
        0.9 * np.log(s["risk"])
        + 1.3 * s["depth"]
        - 0.8 * s["drift"]
        + 2.0 * (s["delinquent"] > 0)
        + 0.6 * (s["age"] < 120)
    )
    p_churn = sigmoid(np.where(monthly, -4.8, -2.6) + risk)
    churn = cycle & (rng.random(n) < p_churn)
    # annual contracts: terminated after an invoice stays unpaid (45 days: half, 75: all)
    overdue = (s["delinquent"] == 45) & (rng.random(n) < 0.5) | (s["delinquent"] >= 75)
    churn |= alive & ~monthly & overdue
    renew = cycle & ~churn

    over = users > seats
    draw = rng.random(n)
    new_seats = np.where(renew & over & (draw < 0.3), users + np.ceil(0.15 * users), seats)
    shrink = renew & (users < 0.6 * seats) & (draw < 0.25)
    new_seats = np.where(shrink, np.maximum(users + 1, np.ceil(0.8 * seats)), new_seats)
    upgrade = renew & (tier < 2) & (rng.random(n) < sigmoid(-4.6 + 1.6 * (need - 1.0)))
    # annual contracts add seats or upgrade mid-term (co-termed), monthly wait for the cycle
    # (one period per start day: no change on the day the current period started)
    midterm = alive & ~churn & ~cycle & ~monthly & (s["since"] != t)
    draw = rng.random(n)
    new_seats = np.where(midterm & over & (draw < 0.01), users + np.ceil(0.1 * users), new_seats)
    upgrade |= midterm & (tier < 2) & (rng.random(n) < 0.003 * np.maximum(need - 1.0, 0.0))
    s["seats"] = new_seats
    s["tier"] = tier + upgrade
    s["need"] = np.where(upgrade, 0.3, need)
    s["need_rate"] = np.where(upgrade, 0.5 * s["need_rate"], s["need_rate"])
    cycle_days = np.where(monthly, MONTHLY_CYCLE, ANNUAL_TERM)
    s["next_cycle"] = np.where(renew, t + cycle_days, s["next_cycle"])
    new_arr = arr_of(s)
    alive &= ~churn
    changed = alive & ((np.abs(new_arr - old_arr) > 1e-6) | (renew & ~monthly))
    rise = changed & (new_arr > old_arr + 1e-6)
    s["since"] = np.where(changed, t, s["since"])

    # -- billing: an invoice at each cycle; a failed one leaves the account delinquent
    p_fail = sigmoid(-4.2 + 0.9 * s["depth"] + 0.5 * np.log(s["risk"]))
    failed = renew & (rng.random(n) < p_fail)
    was = s["delinquent"] > 0
    paid = alive & was & (rng.random(n) < 0.07)
    late = np.where(was & ~paid, s["delinquent"] + 1, 0)
    s["delinquent"] = np.where(failed & (~was | paid), 1, late) * alive

    # -- latent drift, decline phases, team and need
    s["age"] = s["age"] + 1
    s["drift"] = np.clip(s["drift"] + 0.025 * rng.standard_normal(n), -1.5, 1.0)
    declining = s["declining"]
    onset = ~declining & (rng.random(n) < 0.0006 * s["risk"])
    recover = declining & (rng.random(n) < 0.008)
    declining = (declining | onset) & ~recover
    s["declining"] = declining
    s["depth"] = np.where(
        declining, np.minimum(s["depth"] + 0.012, 3.0), np.maximum(s["depth"] - 0.02, 0.0)
    )
    s["team"] = s["team"] * np.exp(s["growth"] / 365.0 - 0.002 * s["depth"])
    gap = np.maximum(s["team"] - users, 0.0)
    invites = rng.poisson(gap * 0.03 * np.exp(-s["depth"]) + 0.0005 * users) * alive
    removed = rng.binomial(users.astype(np.int64), 0.0007 * (1.0 + 2.0 * s["depth"])) * alive
    s["users"] = np.maximum(users + invites - removed, 1)
    target = 3.0 * s["need_rate"] * ramp(s["age"]) * np.exp(s["drift"] - s["depth"])
    s["need"] = s["need"] + 0.02 * (target - s["need"])
    s["alive"] = alive
    return {
        "churn": churn,
        "changed": changed,
        "rise": rise,
        "renew": renew,
        "failed": failed,
        "paid": paid,
        "invites": invites,
        "removed": np.minimum(removed, users - 1) * alive,
    }


def oracle_at(state: State, t: int, paths: int, rng: np.random.Generator) -> pd.DataFrame:
    """P(churn) and P(expansion) in [t, t + 90 days) for every account alive at day t."""
    idx = np.flatnonzero(state["alive"])
    sim = {k: np.repeat(v[idx], paths) for k, v in state.items()}
    churned = np.zeros(idx.size * paths, dtype=bool)
    expanded = np.zeros(idx.size * paths, dtype=bool)
    for d in range(HORIZON_DAYS):
        out = step(sim, t + d, rng)
        churned |= out["churn"]
        expanded |= out["rise"]
    return pd.DataFrame(
        {
            "account": idx,
            "day": t,
            "p_churn": churned.reshape(-1, paths).mean(axis=1),
            "p_expand": expanded.reshape(-1, paths).mean(axis=1),
        }
    )


# ----------------------------------------------------------------------------- accounts


@dataclass
class Book:
    """What the history writes down besides the daily state (rows for the output tables)."""

    periods: list[tuple[int, int, int, int, float, int]] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)  # period index -> end day
    open_period: dict[int, int] = field(default_factory=dict)  # account -> period index
    invoices: list[list[float]] = field(default_factory=list)  # account, due, amount, paid
    outstanding: dict[int, list[int]] = field(default_factory=dict)
    users: list[list[float]] = field(default_factory=list)  # account, created, deact, admin
    active_users: dict[int, list[int]] = field(default_factory=dict)
    invites: list[tuple[int, int, int]] = field(default_factory=list)  # account, day, user
    removals: list[tuple[int, int, int]] = field(default_factory=list)
    churn_day: dict[int, int] = field(default_factory=dict)


def initial_state(n: int, rng: np.random.Generator, days: int) -> tuple[State, pd.DataFrame]:
    """Latent state of every account at its arrival, and the static account attributes."""
    segment = rng.choice(3, size=n, p=SEGMENT_SHARE)
    preexisting = rng.random(n) < 0.5
    arrival = np.where(preexisting, 0, rng.integers(1, max(days, 2), size=n))
    age = np.where(preexisting, rng.integers(60, 1100, size=n), 0)
    base_users = np.choose(
        segment, [2 + rng.poisson(3, n), 6 + rng.poisson(9, n), 15 + rng.poisson(20, n)]
    )
    p_monthly = np.array([0.85, 0.5, 0.05])[segment]
    monthly = rng.random(n) < p_monthly
    tier = np.choose(
        segment,
        [
            rng.choice(3, size=n, p=[0.7, 0.28, 0.02]),
            rng.choice(3, size=n, p=[0.3, 0.55, 0.15]),
            rng.choice(3, size=n, p=[0.0, 0.5, 0.5]),
        ],
    )
    risk = np.exp(rng.normal(0.0, 0.8, n))
    declining = preexisting & (rng.random(n) < 0.06)
    cycle = np.where(monthly, MONTHLY_CYCLE, ANNUAL_TERM)
    first_cycle = np.where(preexisting, rng.integers(1, cycle + 1), arrival + cycle)
    state: State = {
        "alive": np.zeros(n, dtype=bool),
        "age": age.astype(np.int64),
        "risk": risk,
        "growth": rng.normal(0.1, 0.25, n),
        "team": base_users * rng.uniform(0.95, 1.3, n),
        "users": base_users.astype(np.int64),
        "seats": (base_users + np.ceil(0.15 * base_users) + rng.integers(0, 3, n)).astype(float),
        "tier": tier.astype(np.int64),
        "need": rng.uniform(0.0, 0.8, n),
        "need_rate": np.exp(rng.normal(np.log(0.3), 0.7, n)),
        "drift": rng.normal(0.0, 0.3, n),
        "declining": declining,
        "depth": np.where(declining, rng.uniform(0.0, 1.5, n), 0.0),
        "monthly": monthly,
        "next_cycle": first_cycle.astype(np.int64),
        "delinquent": np.zeros(n, dtype=np.int64),
        "discount": np.where(monthly, 1.0, rng.choice([0.8, 0.85, 0.9], size=n)),
        "since": arrival.astype(np.int64),  # start day of the current period
    }
    # icp_fit: a noisy read of the hidden propensity (sales only sees part of it)
    fit_signal = -np.log(risk) + rng.normal(0, 0.8, n)
    attributes = pd.DataFrame(
        {
            "segment_code": segment,
            "arrival": arrival,
            "preexisting": preexisting,
            "industry": rng.choice(INDUSTRIES, size=n),
            "icp_fit": np.where(
                fit_signal > 0.5, "High", np.where(fit_signal > -0.5, "Medium", "Low")
            ),
            "channel": rng.choice(CHANNELS, size=n, p=[0.45, 0.2, 0.25, 0.1]),
            "owner": pd.Series(rng.choice(OWNERS, size=n)).where(segment == 2),
            "addon": rng.random(n) < 0.2,
            "user_weight_shift": rng.normal(0.0, 0.2, n),
            "age0": age,
        }
    )
    return state, attributes


@dataclass
class History:
    state: State
    attributes: pd.DataFrame
    book: Book
    daily: dict[str, np.ndarray]  # (days, accounts) observed-side state after each day
    oracle: pd.DataFrame
    days: int


def run_history(n: int, days: int, month_days: list[int], seed: int, paths: int) -> History:
    rng = np.random.default_rng(seed)
    oracle_rng = np.random.default_rng([seed, 1])
    state, attributes = initial_state(n, rng, days)
    # step moves every path; an account not yet arrived starts from its drawn state
    at_arrival = {k: v.copy() for k, v in state.items()}
    book = Book()
    daily = {
        k: np.zeros((days, n), dtype=np.float32)
        for k in ("drift", "depth", "need", "age", "tier", "users", "seats", "alive")
    }
    oracles = []
    arrivals = attributes["arrival"].to_numpy()
    for t in range(days + 1):
        arriving = np.flatnonzero(arrivals == t)
        if arriving.size:
            for key, value in at_arrival.items():
                state[key][arriving] = value[arriving]
            state["alive"][arriving] = True
            for k in arriving:
                _open_account(book, state, int(k), t, rng, bool(attributes.at[k, "preexisting"]))
        if t in month_days:
            oracles.append(oracle_at(state, t, paths, oracle_rng))
        if t == days:
            break
        out = step(state, t, rng)
        _record(book, state, out, t, rng)
        for name in daily:
            daily[name][t] = state[name]
    oracle = pd.concat(oracles, ignore_index=True) if oracles else pd.DataFrame()
    return History(state, attributes, book, daily, oracle, days)


def _open_account(
    book: Book, s: State, k: int, t: int, rng: np.random.Generator, preexisting: bool
) -> None:
    renewal = -1 if s["monthly"][k] else int(s["next_cycle"][k])
    book.open_period[k] = len(book.periods)
    book.periods.append((k, t, int(s["tier"][k]), int(s["seats"][k]), float(arr_of(s)[k]), renewal))
    # users who joined before the export started keep their real (earlier) creation day
    created = (
        t - rng.integers(0, int(s["age"][k]) + 1, size=int(s["users"][k]))
        if preexisting
        else np.full(int(s["users"][k]), t)
    )
    created[0] = t - int(s["age"][k])  # the first admin signed the account up
    ids = []
    for j, c in enumerate(created):
        ids.append(len(book.users))
        book.users.append([k, float(c), np.nan, float(j == 0 or rng.random() < 0.1)])
    book.active_users[k] = ids
    if not preexisting:
        amount = float(arr_of(s)[k]) / (12.0 if s["monthly"][k] else 1.0)
        book.invoices.append([k, t, amount, t])


def _record(
    book: Book,
    s: State,
    out: dict[str, np.ndarray],
    t: int,
    rng: np.random.Generator,
) -> None:
    arr = arr_of(s)
    for k in np.flatnonzero(out["churn"]).tolist():
        book.ends[book.open_period.pop(int(k))] = t
        book.churn_day[int(k)] = t
    for k in np.flatnonzero(out["changed"]).tolist():
        k = int(k)
        book.ends[book.open_period[k]] = t
        renewal = -1 if s["monthly"][k] else int(s["next_cycle"][k])
        book.open_period[k] = len(book.periods)
        book.periods.append((k, t, int(s["tier"][k]), int(s["seats"][k]), float(arr[k]), renewal))
    for k in np.flatnonzero(out["paid"]).tolist():
        for i in book.outstanding.pop(int(k), []):
            book.invoices[i][3] = t
    for k in np.flatnonzero(out["renew"]).tolist():
        k = int(k)
        amount = float(arr[k]) / (12.0 if s["monthly"][k] else 1.0)
        book.invoices.append([k, t, amount, np.nan if out["failed"][k] else t])
        if out["failed"][k]:
            book.outstanding.setdefault(k, []).append(len(book.invoices) - 1)
    for k in np.flatnonzero(out["invites"]).tolist():
        k = int(k)
        inviter = book.active_users[k][0]
        for _ in range(int(out["invites"][k])):
            book.active_users[k].append(len(book.users))
            book.invites.append((k, t, inviter))
            book.users.append([k, float(t), np.nan, float(rng.random() < 0.08)])
    for k in np.flatnonzero(out["removed"]).tolist():
        k = int(k)
        pool = book.active_users[k]
        for _ in range(int(out["removed"][k])):
            if len(pool) <= 1:
                break
            gone = pool.pop(int(rng.integers(1, len(pool))))
            book.users[gone][2] = float(t)
            book.removals.append((k, t, pool[0]))


# ----------------------------------------------------------------------------- tables


def _stamps(start: pd.Timestamp, days: np.ndarray, seconds: np.ndarray | None = None) -> pd.Series:
    """tz-aware UTC timestamps at ns precision (what pandas exports); NaN days -> NaT."""
    days = np.asarray(days, dtype=float)
    secs = np.zeros_like(days) if seconds is None else np.asarray(seconds, dtype=float)
    ns = (days * 86_400 + secs) * 1e9
    valid = ~np.isnan(ns)
    values = np.where(valid, ns, 0).astype(np.int64) + start.value
    out = pd.Series(pd.to_datetime(values, utc=True))
    return out.where(pd.Series(valid), pd.NaT).astype("datetime64[ns, UTC]")


def _season(dates: pd.DatetimeIndex) -> np.ndarray:
    weekend = dates.day_of_week >= 5
    december = ((dates.month == 12) & (dates.day >= 20)) | ((dates.month == 1) & (dates.day <= 3))
    august = dates.month == 8
    return np.where(weekend, 0.25, 1.0) * np.where(december, 0.5, 1.0) * np.where(august, 0.85, 1.0)


def build_tables(h: History, start: pd.Timestamp, seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng([seed, 2])
    acc_ids = np.array([f"org_{seed}_{k:05d}" for k in range(len(h.attributes))])
    tables = {
        "accounts": _accounts(h, start, acc_ids, rng),
        "subscriptions": _subscriptions(h, start, acc_ids),
    }
    users, user_ids, span = _users(h, start, acc_ids, rng)
    tables["users"] = users
    tables["events"] = _events(h, start, acc_ids, user_ids, span, rng)
    tables["tickets"] = _tickets(h, start, acc_ids, rng)
    tables["invoices"] = _invoices(h, start, acc_ids, rng)
    tables["integrations"] = _integrations(h, start, acc_ids, rng)
    tables["nps_responses"] = _nps(h, start, acc_ids, user_ids, span, rng)
    return tables


def _accounts(
    h: History, start: pd.Timestamp, ids: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    a = h.attributes
    age0 = a["age0"].to_numpy()
    signup = a["arrival"].to_numpy() - age0 - rng.uniform(0, 5, len(a))
    return pd.DataFrame(
        {
            "account_id": ids,
            "name": [f"Org {i[-5:]}" for i in ids],
            "created_at": _stamps(start, signup),
            "segment": np.array(SEGMENTS)[a["segment_code"]],
            "industry": a["industry"],
            "icp_fit": a["icp_fit"],
            "acquisition_channel": a["channel"],
            "csm_owner": a["owner"],
        }
    )


def _subscriptions(h: History, start: pd.Timestamp, ids: np.ndarray) -> pd.DataFrame:
    p = pd.DataFrame(h.book.periods, columns=["k", "start", "tier", "seats", "arr", "renewal"])
    p["end"] = [h.book.ends.get(i, np.nan) for i in range(len(p))]
    addon = h.attributes["addon"].to_numpy()[p["k"]]
    modules = np.array(["", "automation", "automation;sso;audit_log"])[p["tier"]]
    modules = np.where(
        addon, np.char.add(modules, np.where(modules == "", "analytics", ";analytics")), modules
    )
    return pd.DataFrame(
        {
            "account_id": ids[p["k"]],
            "start_at": _stamps(start, p["start"]),
            "end_at": _stamps(start, p["end"]),
            "plan": np.array(PLANS)[p["tier"]],
            "arr": p["arr"].round(2),
            "seats": p["seats"].astype("int64"),
            "usage_limit": USAGE_LIMIT[p["tier"]],
            "modules": pd.Series(modules).replace("", None),
            "renewal_at": _stamps(start, np.where(p["renewal"] < 0, np.nan, p["renewal"])),
        }
    )


def _users(
    h: History, start: pd.Timestamp, acc_ids: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    u = pd.DataFrame(h.book.users, columns=["k", "created", "deact", "admin"])
    k = u["k"].to_numpy(dtype=int)
    churn = pd.Series(h.book.churn_day).reindex(range(len(acc_ids))).to_numpy()[k]
    # at churn most users lose access (some records are never cleaned up)
    lose = ~np.isnan(churn) & np.isnan(u["deact"]) & (rng.random(len(u)) < 0.6)
    lost_at = churn + rng.integers(0, 20, len(u))
    deact = np.where(lose & (lost_at < h.days), lost_at, u["deact"])
    ids = np.array([f"usr_{acc_ids[kk][4:]}_{i:07d}" for i, kk in enumerate(k)])
    created_secs = rng.uniform(8 * 3600, 18 * 3600, len(u))
    # a removal on the day a user was invited comes after the invitation
    same_day = deact == u["created"].to_numpy()
    deact_secs = np.where(
        same_day,
        created_secs + (86_399 - created_secs) * rng.random(len(u)),
        rng.uniform(0, 86_000, len(u)),
    )
    first = np.r_[True, k[1:] != k[:-1]]
    champion = first & (rng.random(len(u)) < 0.7)
    users = pd.DataFrame(
        {
            "account_id": acc_ids[k],
            "user_id": ids,
            "role": np.where(u["admin"] > 0, "admin", "member"),
            "is_champion": champion,
            "is_executive": (u["admin"] > 0) & (rng.random(len(u)) < 0.15),
            "created_at": _stamps(start, u["created"], created_secs),
            "deactivated_at": _stamps(start, deact, deact_secs),
        }
    )
    # days on which each user can act: from max(created, 0) to deactivation/churn/end
    end = np.fmin(
        np.fmin(
            np.where(np.isnan(u["deact"]), np.inf, u["deact"]),
            np.where(np.isnan(churn), np.inf, churn),
        ),
        h.days,
    )
    span = pd.DataFrame(
        {
            "k": k,
            "first": np.maximum(u["created"].to_numpy(dtype=int) + 1, 0),
            "stop": end.astype(int),
            "weight": np.clip(
                rng.beta(2, 3, len(u)) * 1.3 + h.attributes["user_weight_shift"].to_numpy()[k],
                0.05,
                1.5,
            ),
            "admin": u["admin"].to_numpy() > 0,
        }
    )
    return users, ids, span


def _engagement(h: History, dates: pd.DatetimeIndex) -> np.ndarray:
    """(days, accounts) engagement level seen in usage: ramp x exp(drift - depth) x season."""
    d = h.daily
    return ramp(d["age"]) * np.exp(d["drift"] - d["depth"]) * _season(dates)[:, None] * d["alive"]


def _user_days(span: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.maximum(span["stop"].to_numpy() - span["first"].to_numpy(), 0)
    user = np.repeat(np.arange(len(span)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    day = span["first"].to_numpy()[user] + offsets
    return user, day


def _events(
    h: History,
    start: pd.Timestamp,
    acc_ids: np.ndarray,
    user_ids: np.ndarray,
    span: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    dates = pd.date_range(start, periods=h.days, freq="D")
    eng = _engagement(h, dates)
    user, day = _user_days(span)
    k = span["k"].to_numpy()[user]
    e = eng[day, k]
    active = rng.random(user.size) < np.clip(0.3 * span["weight"].to_numpy()[user] * e, 0, 0.9)
    user, day, k, e = user[active], day[active], k[active], e[active]
    n_rows = 1 + rng.poisson(0.6 * e)
    r_user, r_day, r_k = (np.repeat(x, n_rows) for x in (user, day, k))
    tier = h.daily["tier"][r_day, r_k].astype(int)
    cum = np.cumsum(ACTION_WEIGHTS / ACTION_WEIGHTS.sum(axis=1, keepdims=True), axis=1)
    pick = (rng.random(r_user.size)[:, None] > cum[tier]).sum(axis=1)
    names = np.array(ACTIONS)[np.minimum(pick, len(ACTIONS) - 1)]
    qty = np.ones(r_user.size)
    api = names == "api_request"
    qty[api] = 1 + rng.poisson(30.0 * (1 + tier[api]))
    files = names == "file_uploaded"
    qty[files] = 1 + rng.poisson(2.0, files.sum())
    parts = [(r_user, r_day, names, qty)]

    # admins: settings work fades in a decline
    adm = span["admin"].to_numpy()[user]
    depth = h.daily["depth"][day, k]
    a_mask = adm & (rng.random(user.size) < 0.15 * np.exp(-1.2 * depth))
    parts.append(
        (
            user[a_mask],
            day[a_mask],
            rng.choice(ADMIN_ACTIONS, size=a_mask.sum(), p=[0.6, 0.3, 0.1]),
            np.ones(a_mask.sum()),
        )
    )

    # invites and removals are done by the account's first admin
    first_user = pd.Series(np.arange(len(span))).groupby(span["k"].to_numpy()).first()
    for rows, name in ((h.book.invites, "member_invited"), (h.book.removals, "member_removed")):
        if rows:
            arr = np.array(rows)
            parts.append(
                (
                    first_user.reindex(arr[:, 0]).to_numpy(),
                    arr[:, 1],
                    np.full(len(arr), name),
                    np.ones(len(arr)),
                )
            )

    # account-level signals: gate prompts (unmet need below Business), seat limit, spaces
    alive_days, alive_k = np.nonzero(h.daily["alive"])
    need = h.daily["need"][alive_days, alive_k]
    below = h.daily["tier"][alive_days, alive_k] < 2
    seasonal = _season(dates)[alive_days]
    n_gate = rng.poisson(0.12 * need * below * seasonal)
    full = h.daily["users"][alive_days, alive_k] >= h.daily["seats"][alive_days, alive_k]
    n_seat = rng.poisson(0.25 * full * seasonal)
    n_space = rng.poisson(
        0.02 * np.sqrt(h.daily["users"][alive_days, alive_k]) * eng[alive_days, alive_k]
    )
    who = first_user.reindex(alive_k).to_numpy()
    for counts, name in (
        (n_gate, "upgrade_prompt_shown"),
        (n_seat, "seat_limit_reached"),
        (n_space, "space_created"),
    ):
        parts.append(
            (
                np.repeat(who, counts),
                np.repeat(alive_days, counts),
                np.full(counts.sum(), name),
                np.ones(counts.sum()),
            )
        )

    u_all = np.concatenate([p[0] for p in parts]).astype(int)
    d_all = np.concatenate([p[1] for p in parts]).astype(float)
    secs = rng.uniform(7 * 3600, 21 * 3600, u_all.size)
    frame = pd.DataFrame(
        {
            "account_id": acc_ids[span["k"].to_numpy()[u_all]],
            "user_id": user_ids[u_all],
            "occurred_at": _stamps(start, d_all, secs),
            "event": np.concatenate([p[2] for p in parts]),
            "quantity": np.concatenate([p[3] for p in parts]),
        }
    )
    return frame.sort_values("occurred_at", kind="stable").reset_index(drop=True)


TICKET_TEXT = {
    "bad": ("Export keeps failing and we are losing time", "Very frustrated: sync broken again",
            "Considering other tools, this is unacceptable", "Billing error, charged twice"),
    "mid": ("How do I change board permissions?", "Question about the API rate limit",
            "Need help setting up SSO", "Where can I find last month's invoice?"),
    "good": ("Thanks, the new automation works great", "Love the update, quick question on formulas",
             "Great support last time, one more request", "Team is happy, how do we add seats?"),
}  # fmt: skip


def _tickets(
    h: History, start: pd.Timestamp, acc_ids: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    days, k = np.nonzero(h.daily["alive"])
    risk = h.state["risk"][k]
    depth = h.daily["depth"][days, k]
    rate = 0.003 * np.sqrt(h.daily["users"][days, k]) * (0.7 + 0.3 * risk) + 0.02 * depth
    n = rng.poisson(rate)
    days, k, depth, risk = (np.repeat(x, n) for x in (days, k, depth, risk))
    sentiment = np.clip(rng.normal(0.3 - 0.45 * depth - 0.1 * np.log(risk), 0.3), -1, 1)
    bucket = np.where(sentiment < -0.2, "bad", np.where(sentiment < 0.3, "mid", "good"))
    text = np.array(
        [TICKET_TEXT[b][i] for b, i in zip(bucket, rng.integers(0, 4, days.size), strict=True)],
        dtype=object,
    )
    urgent = rng.random(days.size) < sigmoid(-3.0 + 1.5 * depth)
    priority = np.where(
        urgent, "urgent", rng.choice(["low", "normal", "high"], size=days.size, p=[0.3, 0.5, 0.2])
    )
    created = days + rng.uniform(0.3, 0.8, days.size)
    resolved = created + rng.exponential(1.5, days.size)
    return pd.DataFrame(
        {
            "account_id": acc_ids[k],
            "ticket_id": [f"TCK-{i:06d}" for i in range(days.size)],
            "created_at": _stamps(start, created),
            "priority": priority,
            "text": text,
            "sentiment": sentiment.round(3),
            "resolved_at": _stamps(start, np.where(resolved < h.days, resolved, np.nan)),
        }
    )


def _invoices(
    h: History, start: pd.Timestamp, acc_ids: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    inv = pd.DataFrame(h.book.invoices, columns=["k", "due", "amount", "paid"])
    k = inv["k"].to_numpy(dtype=int)
    paid_at = inv["paid"] + np.where(
        inv["paid"] > inv["due"], rng.uniform(0.3, 0.9, len(inv)), rng.uniform(0.01, 0.2, len(inv))
    )
    frame = pd.DataFrame(
        {
            "account_id": acc_ids[k],
            "due_at": _stamps(start, inv["due"]),
            "amount": inv["amount"].round(2),
            "paid_at": _stamps(start, np.where(paid_at < h.days, paid_at, np.nan)),
            # unpaid by the extraction after a failed attempt: failed (contract)
            "status": np.where(paid_at < h.days, "paid", "failed"),
        }
    )
    # the next invoice of every live account is already issued (due after the export)
    live = np.flatnonzero(h.state["alive"] & (h.state["next_cycle"] <= h.days + 31))
    upcoming = pd.DataFrame(
        {
            "account_id": acc_ids[live],
            "due_at": _stamps(start, h.state["next_cycle"][live]),
            "amount": (arr_of(h.state)[live] / np.where(h.state["monthly"][live], 12.0, 1.0)).round(
                2
            ),
            "paid_at": _stamps(start, np.full(live.size, np.nan)),
            "status": "open",
        }
    )
    frame = pd.concat([frame, upcoming], ignore_index=True)
    frame.insert(1, "invoice_id", [f"INV-{i:07d}" for i in range(len(frame))])
    return frame


def _integrations(
    h: History, start: pd.Timestamp, acc_ids: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    rows = []
    first = h.attributes["arrival"].to_numpy()
    for k in range(len(acc_ids)):
        stop = h.book.churn_day.get(k, h.days)
        n = min(
            rng.poisson(1.0 + h.daily["tier"][first[k], k] if first[k] < h.days else 0),
            len(INTEGRATIONS),
        )
        if n == 0 or first[k] >= h.days:
            continue
        hazard = np.cumsum(0.0004 + 0.004 * h.daily["depth"][:, k])
        for name in rng.choice(INTEGRATIONS, size=n, replace=False):
            conn = first[k] + rng.exponential(25.0)
            if conn >= stop:
                continue
            level = hazard[int(conn)] + rng.exponential(1.0)
            cut = float(np.searchsorted(hazard, level))
            if cut >= stop:
                cut = stop + rng.uniform(0, 3) if stop < h.days and rng.random() < 0.7 else np.nan
            if cut >= h.days:
                cut = np.nan
            rows.append((k, name, conn, cut))
    frame = pd.DataFrame(rows, columns=["k", "integration", "conn", "cut"])
    # a disconnection on the connection day comes after it; none after the extraction
    cuts = np.maximum(frame["cut"].to_numpy(dtype=float), frame["conn"].to_numpy() + 0.01)
    cuts = np.where(cuts < h.days, cuts, np.nan)
    return pd.DataFrame(
        {
            "account_id": acc_ids[frame["k"].to_numpy(dtype=int)],
            "integration": frame["integration"],
            "connected_at": _stamps(start, frame["conn"]),
            "disconnected_at": _stamps(start, cuts),
        }
    )


def _nps(
    h: History,
    start: pd.Timestamp,
    acc_ids: np.ndarray,
    user_ids: np.ndarray,
    span: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    parts = []
    for survey in range(20, h.days, 91):
        on = (span["first"] <= survey) & (span["stop"] > survey)
        cand = np.flatnonzero(on.to_numpy() & (rng.random(len(span)) < 0.12))
        k = span["k"].to_numpy()[cand]
        depth = h.daily["depth"][survey, k]
        drift = h.daily["drift"][survey, k]
        mean = 8.0 - 2.2 * depth - 0.6 * np.log(h.state["risk"][k]) + 0.8 * drift
        score = np.clip(np.round(rng.normal(mean, 1.5)), 0, 10).astype(int)
        day = survey + rng.uniform(0, 10, cand.size)
        keep = day < h.days
        parts.append(pd.DataFrame({"u": cand[keep], "day": day[keep], "score": score[keep]}))
    frame = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["u", "day", "score"])
    )
    u = frame["u"].to_numpy(dtype=int)
    return pd.DataFrame(
        {
            "account_id": acc_ids[span["k"].to_numpy()[u]],
            "user_id": user_ids[u],
            "responded_at": _stamps(start, frame["day"]),
            "score": frame["score"].astype("int64"),
        }
    )


# ----------------------------------------------------------------------------- main


def generate(out: Path, *, accounts: int, months: int, seed: int, start: str, paths: int) -> Path:
    """Write the company into `out` and its oracle beside it; the oracle's path."""
    begin = pd.Timestamp(start)
    end = begin + pd.DateOffset(months=months)
    days = int((end - begin).days)
    month_starts = pd.date_range(begin, end, freq="MS")
    month_days = [int((m - begin).days) for m in month_starts]
    history = run_history(accounts, days, month_days, seed, paths)
    tables = build_tables(history, begin, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    (out / "event_map.yaml").write_text(yaml.safe_dump(EVENT_MAP, sort_keys=False))
    manifest = {
        "extracted_at": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": "experiments/other_company.py",
        "seed": seed,
    }
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    o = history.oracle
    ids = np.array([f"org_{seed}_{k:05d}" for k in range(accounts)])
    oracle = pd.DataFrame(
        {
            "account_id": ids[o["account"].to_numpy(dtype=int)],
            "as_of": begin + pd.to_timedelta(o["day"], unit="D"),
            "p_churn": o["p_churn"],
            "p_expand": o["p_expand"],
        }
    )
    path = out.parent / f"{out.name}-oracle.parquet"
    oracle.to_parquet(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--paths", type=int, default=200, help="oracle Monte Carlo paths")
    args = parser.parse_args(argv)
    if args.accounts < 1 or args.months < 1 or args.paths < 1:
        sys.stderr.write("error: --accounts, --months and --paths must be positive\n")
        return 2
    tick = time.perf_counter()
    oracle = generate(
        args.out,
        accounts=args.accounts,
        months=args.months,
        seed=args.seed,
        start=args.start,
        paths=args.paths,
    )
    took = time.perf_counter() - tick
    sys.stdout.write(f"wrote {args.out} and {oracle} in {took:.1f}s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
