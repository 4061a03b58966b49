"""Users: a provisioned team that follows demand within seats, champions and executives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.simulate.arrow import DAY_US, Clock, account_ids, suffixed, table
from features.simulate.history import History

TENURE_DAYS = 700.0
ADMIN_SHARE = 0.08


@dataclass(frozen=True)
class Users:
    """One row per user of a batch: who, when alive (days [start, end)), what role."""

    account: np.ndarray
    start: np.ndarray
    end: np.ndarray  # exclusive; == days when still active at the extraction
    admin: np.ndarray
    champion: np.ndarray
    executive: np.ndarray
    propensity: np.ndarray
    ids: np.ndarray


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, start, end) of every run of True along axis 1 of a 2-D bool array."""
    padded = np.zeros((flags.shape[0], flags.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = flags
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)
    return rows, starts, ends


def _split_by_turnover(
    start: np.ndarray, end: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each seat run is held by successive people who leave after exponential tenures."""
    parent, s_out, e_out = [], [], []
    run = np.arange(start.size)
    cur = start.copy()
    while run.size:
        leave = cur + np.ceil(rng.exponential(TENURE_DAYS, run.size)).astype(np.int64)
        stop = np.minimum(leave, end[run])
        parent.append(run)
        s_out.append(cur)
        e_out.append(stop)
        more = stop < end[run]
        run, cur = run[more], stop[more]
    return np.concatenate(parent), np.concatenate(s_out), np.concatenate(e_out)


def draw_users(history: History, rng: np.random.Generator) -> Users:
    """Seat holders, one champion per champion tenure and one executive per relationship."""
    team = np.where(history.active, np.minimum(np.rint(history.demand), history.seats), 0).astype(
        np.int64
    )
    width = np.maximum(team.max(axis=0), 1)
    slot_account = np.repeat(np.arange(width.size), width)
    slot_rank = np.arange(slot_account.size) - np.repeat(np.cumsum(width) - width, width)
    need = team.T[slot_account] > slot_rank[:, None]
    rows, starts, ends = _runs(need)
    parent, s, e = _split_by_turnover(starts, ends, rng)
    acct = slot_account[rows][parent]
    admin = (slot_rank[rows][parent] == 0) | (rng.random(acct.size) < ADMIN_SHARE)
    c_rows, c_start, c_end = _runs((history.champion & history.active).T)
    seg = history.accounts.segment
    x_rows, x_start, x_end = _runs(history.active.T & (seg[:, None] > 0))
    account = np.concatenate([acct, c_rows, x_rows])
    n_c, n_x = c_rows.size, x_rows.size
    is_champion = np.r_[np.zeros(acct.size, bool), np.ones(n_c, bool), np.zeros(n_x, bool)]
    is_exec = np.r_[np.zeros(acct.size + n_c, bool), np.ones(n_x, bool)]
    order = np.lexsort((np.r_[s, c_start, x_start], account))
    account = account[order]
    number = np.arange(account.size) - np.searchsorted(account, account)
    prefix = np.char.replace(account_ids(history.accounts.index[account]).astype(str), "ACC", "U")
    propensity = rng.normal(0.0, 0.8, account.size)
    champion = is_champion[order]
    executive = is_exec[order]
    propensity += 1.2 * champion - 0.4 * executive
    return Users(
        account=account,
        start=np.r_[s, c_start, x_start][order],
        end=np.r_[e, c_end, x_end][order],
        admin=np.r_[admin, np.ones(n_c, bool), rng.random(n_x) < 0.5][order],
        champion=champion,
        executive=executive,
        propensity=propensity,
        ids=suffixed(prefix, number, 4),
    )


def users_table(
    history: History, users: Users, *, clock: Clock, rng: np.random.Generator
) -> pa.Table:
    """The users table; people present when history starts joined before it."""
    acc = history.accounts
    n = users.account.size
    days = history.active.shape[0]
    created_day = acc.created_day[users.account]
    at_first_day = users.start == 0
    # people of accounts that were customers before the history joined at some earlier time
    before = np.where(
        at_first_day & (created_day < 0),
        (created_day * rng.random(n)).astype(np.int64),
        users.start,
    )
    created = (
        before * DAY_US + acc.offset_us[users.account] + rng.integers(0, 3 * 3600, n) * 1_000_000
    )
    deactivated = users.end * DAY_US + rng.integers(0, 86_400, n) * 1_000_000
    return table(
        "users",
        {
            "account_id": account_ids(acc.index[users.account]),
            "user_id": users.ids,
            "role": np.where(users.admin, "admin", "member").astype(object),
            "is_champion": users.champion,
            "is_executive": users.executive,
            "created_at": clock.ts(created),
            "deactivated_at": clock.ts(deactivated, users.end < days),
        },
    )
