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
from typing import Any

import pandas as pd

from models.scoring.comparison import COMPARISON_DAYS, comparison_gap_ok


@dataclass(frozen=True)
class RequestContext:
    """What `score_payloads` takes beside a request's rows (None: nothing known)."""

    previous: pd.DataFrame | None = None
    earlier: pd.DataFrame | None = None
    peers: pd.DataFrame | None = None


def served_rows(frames: Sequence[pd.DataFrame | None]) -> pd.DataFrame:
    """The served snapshot rows of every date held (latest, previous, ~90 days), one per date."""
    parts = [f for f in frames if f is not None and not f.empty]
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.assign(as_of=pd.to_datetime(rows["as_of"]))
    return rows.drop_duplicates(["account_id", "as_of"], keep="first").reset_index(drop=True)


def request_context(
    served: pd.DataFrame,
    latest: pd.DataFrame | None,
    accounts: Iterable[Any],
    as_ofs: Iterable[Any],
) -> RequestContext:
    """Per request row (account, as_of): its previous served row and its "90 days ago" row.

    previous: the latest served row strictly before the row's as_of; earlier: the served row
    closest to `COMPARISON_DAYS` before it, within the tolerance. An account sent twice is
    matched on its first row (the drivers match earlier rows by account).
    """
    peers = latest if latest is not None and not latest.empty else None
    if served.empty:
        return RequestContext(peers=peers)
    keys = served["account_id"].astype(str)
    accounts, as_ofs = list(accounts), list(as_ofs)
    wanted = {str(a) for a in accounts}
    mine = keys.isin(wanted)
    groups = dict(list(served[mine].groupby(keys[mine])))
    previous: list[Any] = []
    earlier: list[Any] = []
    seen: set[str] = set()
    for account, when in zip(accounts, as_ofs, strict=True):
        key = str(account)
        if key in seen or key not in groups or when is None or pd.isna(when):
            continue
        seen.add(key)
        rows = groups[key]
        gaps = (pd.Timestamp(when) - rows["as_of"]).dt.days
        before = rows[gaps > 0]
        if not before.empty:
            previous.append(before["as_of"].idxmax())
        usable = gaps[gaps.map(comparison_gap_ok)]
        if not usable.empty:
            earlier.append((usable - COMPARISON_DAYS).abs().idxmin())
    return RequestContext(
        previous=served.loc[previous].reset_index(drop=True) if previous else None,
        earlier=served.loc[earlier].reset_index(drop=True) if earlier else None,
        peers=peers,
    )
