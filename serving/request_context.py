"""A POSTed account's own history, from the served book: its previous row and its "then".

A CRM that POSTs today's features for an account the server already serves should get the
same readout as the precomputed score: health_change against the account's latest served
row before the request (the At-risk play needs it), drivers compared with its row about 90
days earlier, and segment percentiles among the served book rather than among the few rows
of one request. Accounts the book does not hold, or rows without a usable as_of, get none
of it, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.scoring.comparison import COMPARISON_DAYS, comparison_gap_ok

if TYPE_CHECKING:
    from models.scoring.drivers import Peers


@dataclass(frozen=True)
class RequestContext:
    """What `score_payloads` takes beside a request's rows (None: nothing known)."""

    previous: pd.DataFrame | None = None
    earlier: pd.DataFrame | None = None
    peers: Peers | None = None  # of the served book


@dataclass(frozen=True)
class ServedBook:
    """The served snapshot rows of every date held, indexed by account once per load."""

    rows: pd.DataFrame
    at: np.ndarray  # as_of per row, datetime64[ns]
    positions: dict[str, np.ndarray]  # account_id -> its rows' positions

    @property
    def empty(self) -> bool:
        return self.rows.empty


def served_rows(frames: Sequence[pd.DataFrame | None]) -> ServedBook:
    """The rows of the latest, previous and ~90-day dates held, one per account and date."""
    parts = [f for f in frames if f is not None and not f.empty]
    if not parts:
        return ServedBook(pd.DataFrame(), np.array([], dtype="datetime64[ns]"), {})
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.assign(as_of=pd.to_datetime(rows["as_of"]))
    rows = rows.drop_duplicates(["account_id", "as_of"], keep="first").reset_index(drop=True)
    rows = rows.copy()  # one block per dtype: a request takes 1-2 rows out of it
    keys = rows["account_id"].astype(str).to_numpy()
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(keys[order][1:] != keys[order][:-1]) + 1
    positions = {str(keys[g[0]]): g for g in np.split(order, bounds)}
    return ServedBook(rows, rows["as_of"].to_numpy(dtype="datetime64[ns]"), positions)


def request_context(
    served: ServedBook,
    peers: Peers | None,
    accounts: Iterable[Any],
    as_ofs: Iterable[Any],
) -> RequestContext:
    """Per request row (account, as_of): its previous served row and its "90 days ago" row.

    previous: the latest served row strictly before the row's as_of; earlier: the served row
    closest to `COMPARISON_DAYS` before it, within the tolerance. An account sent twice is
    matched on its first row (the drivers match earlier rows by account).
    """
    if served.empty:
        return RequestContext(peers=peers)
    previous: list[int] = []
    earlier: list[int] = []
    seen: set[str] = set()
    day = np.timedelta64(1, "D")
    for account, when in zip(accounts, as_ofs, strict=True):
        key = str(account)
        found = served.positions.get(key)
        if found is None or key in seen or when is None or pd.isna(when):
            continue
        seen.add(key)
        gaps = (np.datetime64(pd.Timestamp(when), "ns") - served.at[found]) // day
        before = found[gaps > 0]
        if before.size:
            previous.append(int(before[np.argmax(served.at[before])]))
        usable = np.array([comparison_gap_ok(int(g)) for g in gaps])
        if usable.any():
            distance = np.abs(gaps[usable] - COMPARISON_DAYS)
            earlier.append(int(found[usable][np.argmin(distance)]))
    return RequestContext(
        previous=served.rows.iloc[previous].reset_index(drop=True) if previous else None,
        earlier=served.rows.iloc[earlier].reset_index(drop=True) if earlier else None,
        peers=peers,
    )
