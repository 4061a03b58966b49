"""Integrations, support tickets and NPS answers of a batch, from its latent days."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.simulate.arrow import DAY_US, Clock, account_ids, suffixed, table
from features.simulate.config import INTEGRATIONS
from features.simulate.history import History
from features.simulate.latent import sigmoid
from features.simulate.people import Users
from features.simulate.texts import DEFAULT_TOPICS, Topic, nps_comment, render, topic_table

TICKET_RATE = np.array([0.02, 0.04, 0.08])  # per day at neutral health, by segment
SURVEY_EVERY = 90
PRESSURE = 0.95  # demand over this share of the seats: the account is short of seats


def integrations_table(history: History, *, clock: Clock, rng: np.random.Generator) -> pa.Table:
    """Connections made more often by healthy accounts, dropped by unhealthy ones or at churn."""
    days, n = history.active.shape
    k = len(INTEGRATIONS)
    on = np.zeros((n, k), dtype=bool)
    since = np.zeros((n, k), dtype=np.int64)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    u = rng.random((days, n, k), dtype=np.float32)
    for day in range(days):
        act = history.active[day][:, None]
        h = history.health[day][:, None]
        p_on = 0.0025 * sigmoid(h + 0.5 * history.plan[day][:, None])
        p_off = 0.002 * sigmoid(-1.5 * h - 1.0)
        start = act & ~on & (u[day] < p_on)
        stop = on & (~act | (u[day] < p_off))
        if stop.any():
            a, i = np.nonzero(stop)
            rows.append((a, i, since[a, i], np.full(a.size, day)))
        on = (on & ~stop) | start
        since[start] = day
    a, i = np.nonzero(on)
    rows.append((a, i, since[a, i], np.full(a.size, days)))
    acct, which, start_day, end_day = (np.concatenate(c) for c in zip(*rows, strict=True))
    offset = rng.integers(0, 86_400, (2, acct.size)) * 1_000_000
    return table(
        "integrations",
        {
            "account_id": account_ids(history.accounts.index[acct]),
            "integration": np.array(INTEGRATIONS, dtype=object)[which],
            "connected_at": clock.ts(start_day * DAY_US + offset[0]),
            "disconnected_at": clock.ts(end_day * DAY_US + offset[1], end_day < days),
        },
    )


def _pressure(history: History, day: np.ndarray, acct: np.ndarray) -> np.ndarray:
    return history.demand[day, acct] > PRESSURE * history.seats[day, acct]


def tickets_table(
    history: History,
    *,
    clock: Clock,
    rng: np.random.Generator,
    topics: tuple[Topic, ...] = DEFAULT_TOPICS,
) -> tuple[pa.Table, pa.Table]:
    """Tickets (a base rate, bursts during support episodes, tone and priority by health)
    and the true topic of each ticket's text (the side table `text_topics`)."""
    seg = history.accounts.segment
    h = history.health.astype(np.float64)
    rate = TICKET_RATE[seg][None, :] * (1.0 + 4.0 * history.episode) * np.exp(-0.4 * h)
    counts = rng.poisson(np.where(history.active, rate, 0.0))
    day, acct = np.nonzero(counts)
    rep = counts[day, acct]
    day, acct = np.repeat(day, rep), np.repeat(acct, rep)
    hd, ep = h[day, acct], history.episode[day, acct]
    p_neg = sigmoid(-1.2 - 1.2 * hd + 2.0 * ep)
    p_pos = sigmoid(-1.0 + 1.0 * hd) * (1.0 - p_neg)
    r = rng.random(day.size)
    tone = np.where(r < p_neg, -1, np.where(r < p_neg + p_pos, 1, 0))
    urgent = rng.random(day.size) < np.where(tone < 0, 0.6, 0.1)
    priority = np.where(
        urgent,
        np.where(rng.random(day.size) < 0.4, "urgent", "high"),
        np.where(rng.random(day.size) < 0.3, "low", "normal"),
    ).astype(object)
    created = day * DAY_US + rng.integers(0, 86_400, day.size) * 1_000_000
    hours = rng.lognormal(np.log(6.0), 1.0, day.size) * np.where(ep, 3.0, 1.0)
    resolved = created + (hours * 3_600_000_000).astype(np.int64)
    pressure = _pressure(history, day, acct)
    order = np.lexsort((created, acct))
    acct, created, resolved = acct[order], created[order], resolved[order]
    ids = account_ids(history.accounts.index[acct])
    number = np.arange(acct.size) - np.searchsorted(acct, acct)
    text, topic = render(tone[order], rng, pressure=pressure[order], topics=topics)
    tickets = table(
        "tickets",
        {
            "account_id": ids,
            "ticket_id": suffixed(np.char.replace(ids.astype(str), "ACC", "T"), number, 5),
            "created_at": clock.ts(created),
            "priority": priority[order],
            "text": text,
            "resolved_at": clock.ts(resolved, resolved < clock.end_us),
        },
    )
    return tickets, topic_table(tickets, "tickets", "created_at", topic, topics)


def nps_table(
    history: History,
    users: Users,
    *,
    clock: Clock,
    rng: np.random.Generator,
    topics: tuple[Topic, ...] = DEFAULT_TOPICS,
) -> tuple[pa.Table, pa.Table]:
    """Quarterly surveys (a few users answer, scores follow health with noise) and the true
    topic of each comment."""
    days, n = history.active.shape
    phase = rng.integers(0, SURVEY_EVERY, size=(n,))
    day = (phase[None, :] + SURVEY_EVERY * np.arange(days // SURVEY_EVERY + 1)[:, None]).ravel()
    acct = np.tile(np.arange(n), days // SURVEY_EVERY + 1)
    ok = day < days
    day, acct = day[ok], acct[ok]
    ok = history.active[day, acct]
    day, acct = day[ok], acct[ok]
    answers = rng.binomial(np.minimum(1 + history.seats[day, acct].astype(np.int64) // 10, 6), 0.35)
    day, acct = np.repeat(day, answers), np.repeat(acct, answers)
    h = history.health[day, acct].astype(np.float64)
    score = np.clip(np.rint(7.8 + 1.8 * h + rng.normal(0.0, 1.4, day.size)), 0, 10).astype(np.int64)
    user = _someone(users, acct, day, rng)
    responded = day * DAY_US + rng.integers(0, 86_400, day.size) * 1_000_000
    order = np.lexsort((responded, acct))
    user_ids = np.where(user >= 0, users.ids[np.maximum(user, 0)], None)
    pressure = _pressure(history, day, acct)[order]
    comment, topic = nps_comment(score[order], rng, pressure=pressure, topics=topics)
    answers_table = table(
        "nps_responses",
        {
            "account_id": account_ids(history.accounts.index[acct[order]]),
            "user_id": pa.array(user_ids[order], type=pa.string()),
            "responded_at": clock.ts(responded[order]),
            "score": score[order],
            "comment": pa.array(comment, type=pa.string()),
        },
    )
    return answers_table, topic_table(answers_table, "nps_responses", "responded_at", topic, topics)


def _someone(
    users: Users, acct: np.ndarray, day: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A random user of the account alive that day (-1 when the draw hits nobody)."""
    lo = np.searchsorted(users.account, acct, side="left")
    hi = np.searchsorted(users.account, acct, side="right")
    pick = lo + np.floor(rng.random(acct.size) * np.maximum(hi - lo, 1)).astype(np.int64)
    pick = np.minimum(pick, users.account.size - 1)
    alive = (hi > lo) & (users.start[pick] < day) & (users.end[pick] > day)
    return np.where(alive, pick, -1)
