"""Accounts, subscriptions and invoices tables from a batch history."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.simulate.arrow import DAY_US, Clock, account_ids, labels, suffixed, table
from features.simulate.config import (
    CHANNELS,
    CSM_OWNERS,
    ICP_LEVELS,
    INDUSTRIES,
    MODULES,
    PLANS,
    SEGMENTS,
)
from features.simulate.history import History
from features.simulate.latent import sigmoid, usage_limit

NAME_HEADS = (
    "Blue",
    "North",
    "Bright",
    "Iron",
    "Silver",
    "Green",
    "Red",
    "Cloud",
    "Stone",
    "Swift",
)
NAME_TAILS = (
    "Labs",
    "Systems",
    "Logistics",
    "Health",
    "Foods",
    "Capital",
    "Works",
    "Media",
    "Bank",
)


def accounts_table(history: History, *, clock: Clock, rng: np.random.Generator) -> pa.Table:
    """One row per account with its static attributes."""
    acc = history.accounts
    n = acc.index.size
    ids = account_ids(acc.index)
    heads = np.array(NAME_HEADS, dtype=object)[rng.integers(0, len(NAME_HEADS), n)]
    tails = np.array(NAME_TAILS, dtype=object)[rng.integers(0, len(NAME_TAILS), n)]
    names = heads + " " + tails + " " + acc.index.astype(str)
    created = acc.created_day * DAY_US + acc.offset_us
    # industry and channel mix are context only: they do not drive the latent process
    return table(
        "accounts",
        {
            "account_id": ids,
            "name": names,
            "created_at": clock.ts(created),
            "segment": labels(acc.segment, SEGMENTS),
            "industry": labels(rng.integers(0, len(INDUSTRIES), n), INDUSTRIES),
            "icp_fit": labels(acc.icp, ICP_LEVELS),
            "acquisition_channel": labels(rng.integers(0, len(CHANNELS), n), CHANNELS),
            "csm_owner": labels(acc.owner, CSM_OWNERS),
        },
    )


def subscriptions_table(history: History, *, clock: Clock) -> pa.Table:
    """Contract periods: each start row ends where the account's next record begins."""
    p = history.periods
    order = np.lexsort((p["t_us"], p["account"]))
    account = p["account"][order].astype(np.int64)
    t_us = p["t_us"][order].astype(np.int64)
    same_next = np.append(account[1:] == account[:-1], False)
    next_t = np.append(t_us[1:], 0)
    keep = p["start"][order].astype(bool)
    end_valid = same_next[keep]
    plan = p["plan"][order][keep].astype(np.int64)
    seats = p["seats"][order][keep].astype(np.int64)
    k = p["modules"][order][keep].astype(np.int64)
    module_names = np.array([";".join(MODULES[:i]) for i in range(len(MODULES) + 1)], dtype=object)
    renewal_day = p["renewal_day"][order][keep].astype(np.int64)
    offset = history.accounts.offset_us[account[keep]]
    return table(
        "subscriptions",
        {
            "account_id": account_ids(history.accounts.index[account[keep]]),
            "start_at": clock.ts(t_us[keep]),
            "end_at": clock.ts(next_t[keep], end_valid),
            "plan": labels(plan, PLANS),
            "arr": p["arr"][order][keep].astype(np.float64),
            "seats": seats,
            "usage_limit": usage_limit(plan, seats.astype(np.float64)),
            "modules": pa.array(module_names[k], type=pa.string(), mask=k == 0),
            "renewal_at": clock.ts(renewal_day * DAY_US + offset, renewal_day >= 0),
        },
    )


def invoices_table(history: History, *, clock: Clock, rng: np.random.Generator) -> pa.Table:
    """Invoices at each billing point; collection fails more often for unhealthy accounts."""
    b = history.bills
    account = b["account"].astype(np.int64)
    day = b["day"].astype(np.int64)
    n = account.size
    due = day * DAY_US + history.accounts.offset_us[account]
    health = history.health[np.minimum(day, history.health.shape[0] - 1), account]
    fails = rng.random(n) < sigmoid(-3.4 - 1.3 * health.astype(np.float64))
    never = fails & (rng.random(n) < 0.5)
    delay_days = np.where(fails, rng.uniform(3, 25, n), rng.exponential(1.5, n))
    paid = due + (delay_days * DAY_US).astype(np.int64)
    void = rng.random(n) < 0.01
    paid_ok = ~never & ~void & (paid < clock.end_us)
    status = np.where(paid_ok, "paid", np.where(void, "void", "open")).astype(object)
    status[never & ~void & (due < clock.end_us)] = "failed"
    number = _rank_within(account)
    return table(
        "invoices",
        {
            "account_id": account_ids(history.accounts.index[account]),
            "invoice_id": suffixed(
                np.char.replace(
                    account_ids(history.accounts.index[account]).astype(str), "ACC", "INV"
                ),
                number,
                4,
            ),
            "due_at": clock.ts(due),
            "amount": b["amount"].astype(np.float64),
            "paid_at": clock.ts(paid, paid_ok),
            "status": status,
        },
    )


def _rank_within(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values, in the current order (stable)."""
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    counts = np.diff(np.r_[starts, sorted_group.size])
    ranks_sorted = np.arange(sorted_group.size) - np.repeat(starts, counts)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks
