"""Point-in-time properties: what happens at or after as_of never reaches a feature,
and labels depend on nothing but the subscription rows that touch their window.

Random small companies (hypothesis) are built in contract form; the snapshot at as_of
is rebuilt after every table's future has been rewritten (rows dated at or after as_of
changed, added or deleted, and current-state timestamps moved to other values at or
after as_of) and must be identical.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.config import SnapshotConfig
from features.contract import TABLES
from features.labels import build_labels
from features.snapshots import build_features
from features.source import DataSource
from tests.snapshot_factories import EVENT_MAP, TS, make_source, table

T0 = TS("2023-01-01")
EXTRACTED = TS("2026-06-01")
EVENT_NAMES = sorted({n for names in EVENT_MAP.roles().values() for n in names} | {"other"})
CONFIG = SnapshotConfig()
Draw = Any  # hypothesis' draw function


def _moment(draw: Draw, as_of: pd.Timestamp, *, past: int = 400, future: int = 200) -> pd.Timestamp:
    """A time near as_of: exactly as_of, or up to `past` days before / `future` after."""
    hours = draw(st.one_of(st.just(0), st.integers(-past * 24, future * 24)))
    return max(T0, as_of + pd.Timedelta(hours=hours))


def _after(draw: Draw, as_of: pd.Timestamp) -> pd.Timestamp:
    return as_of + pd.Timedelta(hours=draw(st.integers(0, 150 * 24)))


def _maybe_after(draw: Draw, as_of: pd.Timestamp) -> pd.Timestamp | None:
    kind = draw(st.sampled_from(["open", "at", "after"]))
    return None if kind == "open" else as_of if kind == "at" else _after(draw, as_of)


def _periods(draw: Draw, account: str, as_of: pd.Timestamp) -> list[dict[str, Any]]:
    # Contract start dates are observed facts: none may lie after the extraction.
    latest = EXTRACTED - pd.Timedelta(days=1)
    start = min(as_of + pd.Timedelta(days=draw(st.integers(-500, 60))), latest)
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        if rows and start > latest:
            break
        end = start + pd.Timedelta(days=draw(st.integers(5, 200)))
        rows.append(_period(draw, account, start, end))
        start = end + pd.Timedelta(days=draw(st.sampled_from([0, 0, 10, 45])))
    if draw(st.booleans()):
        rows[-1]["end_at"] = None
    return rows


def _period(
    draw: Draw, account: str, start: pd.Timestamp, end: pd.Timestamp | None
) -> dict[str, Any]:
    renewal = draw(st.one_of(st.none(), st.just(start + pd.Timedelta(days=365))))
    return {
        "account_id": account,
        "start_at": start,
        "end_at": end,
        "arr": draw(st.sampled_from([0.0, 100.0, 500.0, 1000.0, 2500.0])),
        "plan": draw(st.sampled_from(["Starter", "Pro"])),
        "seats": draw(st.integers(1, 20)),
        "usage_limit": draw(st.sampled_from([None, 0.0, 50.0, 500.0])),
        "modules": draw(st.sampled_from([None, "", "x", "x;y"])),
        "renewal_at": renewal,
    }


def _users(draw: Draw, account: str, as_of: pd.Timestamp, n: int) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        created = _moment(draw, as_of, future=60)
        gone = draw(st.one_of(st.none(), st.integers(1, 300)))
        rows.append(
            {
                "account_id": account,
                "user_id": f"{account}-u{k}",
                "created_at": created,
                "role": draw(st.sampled_from(["admin", "member"])),
                "is_champion": draw(st.booleans()),
                "is_executive": draw(st.booleans()),
                "deactivated_at": None if gone is None else created + pd.Timedelta(days=gone),
            }
        )
    return rows


def _events(
    draw: Draw, account: str, users: list[str], as_of: pd.Timestamp, n: int
) -> list[dict[str, Any]]:
    return [
        {
            "account_id": account,
            "user_id": draw(st.sampled_from(users)),
            "occurred_at": _moment(draw, as_of, past=120, future=40),
            "event": draw(st.sampled_from(EVENT_NAMES)),
            "quantity": float(draw(st.integers(1, 50))),
        }
        for _ in range(n)
    ]


def _side_tables(
    draw: Draw, account: str, as_of: pd.Timestamp, key: str
) -> dict[str, list[dict[str, Any]]]:
    def closed(opened: pd.Timestamp) -> pd.Timestamp | None:
        gap = draw(st.one_of(st.none(), st.integers(1, 2000)))
        return None if gap is None else opened + pd.Timedelta(hours=gap)

    integrations, tickets, nps, invoices = [], [], [], []
    for k in range(draw(st.integers(0, 3))):
        opened = _moment(draw, as_of)
        integrations.append(
            {
                "account_id": account,
                "integration": f"i{k}",
                "connected_at": opened,
                "disconnected_at": closed(opened),
            }
        )
    for k in range(draw(st.integers(0, 4))):
        opened = _moment(draw, as_of, past=250)
        tickets.append(
            {
                "account_id": account,
                "ticket_id": f"{key}-t{k}",
                "created_at": opened,
                "priority": draw(st.sampled_from(["low", "high", "urgent", None])),
                "sentiment": draw(st.sampled_from([None, -0.8, 0.0, 0.6])),
                "resolved_at": closed(opened),
            }
        )
    for _ in range(draw(st.integers(0, 3))):
        nps.append(
            {
                "account_id": account,
                "responded_at": _moment(draw, as_of),
                "score": draw(st.integers(0, 10)),
            }
        )
    for k in range(draw(st.integers(0, 4))):
        due = _moment(draw, as_of, past=150)
        paid = closed(due)
        status = "paid" if paid else draw(st.sampled_from(["open", "failed", "void"]))
        invoices.append(
            {
                "account_id": account,
                "invoice_id": f"{key}-i{k}",
                "due_at": due,
                "amount": 100.0,
                "paid_at": paid,
                "status": status,
            }
        )
    return {
        "integrations": integrations,
        "tickets": tickets,
        "nps_responses": nps,
        "invoices": invoices,
    }


@st.composite
def companies(draw: Draw) -> tuple[pd.Timestamp, dict[str, list[dict[str, Any]]]]:
    as_of = T0 + pd.Timedelta(days=draw(st.integers(200, 600)))
    rows: dict[str, list[dict[str, Any]]] = {
        t: []
        for t in (
            "accounts",
            "subscriptions",
            "users",
            "events",
            "integrations",
            "tickets",
            "nps_responses",
            "invoices",
        )
    }
    for i in range(draw(st.integers(1, 3))):
        account = f"acc{i}"
        rows["accounts"].append(
            {
                "account_id": account,
                "created_at": _moment(draw, as_of, future=30),
                "segment": "SMB",
                "csm_owner": draw(st.sampled_from([None, "ann"])),
            }
        )
        rows["subscriptions"] += _periods(draw, account, as_of)
        users = _users(draw, account, as_of, draw(st.integers(1, 3)))
        rows["users"] += users
        rows["events"] += _events(
            draw, account, [u["user_id"] for u in users], as_of, draw(st.integers(0, 25))
        )
        for name, extra in _side_tables(draw, account, as_of, account).items():
            rows[name] += extra
    return as_of, rows


def _rewrite_future(
    draw: Draw, as_of: pd.Timestamp, rows: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Every table with its rows dated at/after as_of replaced and open states moved."""
    out: dict[str, list[dict[str, Any]]] = {}
    out["accounts"] = [
        {**r, "created_at": _after(draw, as_of)} if r["created_at"] >= as_of else r
        for r in rows["accounts"]
    ]
    out["subscriptions"] = _rewrite_periods(draw, as_of, rows["subscriptions"])
    out["users"] = [_rewrite_user(draw, as_of, r) for r in rows["users"]]
    out["users"] += [
        {
            **r,
            "user_id": r["user_id"] + "-new",
            "created_at": _after(draw, as_of),
            "deactivated_at": None,
        }
        for r in rows["users"][: draw(st.integers(0, 2))]
    ]
    past = [r for r in rows["events"] if r["occurred_at"] < as_of]
    extra = [
        {**r, "occurred_at": _after(draw, as_of), "event": draw(st.sampled_from(EVENT_NAMES))}
        for r in rows["events"][: draw(st.integers(0, 10))]
    ]
    out["events"] = past + extra
    out.update(_rewrite_side(draw, as_of, rows))
    return out


def _rewrite_user(draw: Draw, as_of: pd.Timestamp, r: dict[str, Any]) -> dict[str, Any]:
    if r["created_at"] < as_of:
        return {**r, "deactivated_at": _reopen(draw, as_of, r["deactivated_at"])}
    # provisioned at/after as_of: everything about the person may differ
    return {
        **r,
        "created_at": _after(draw, as_of),
        "deactivated_at": None,
        "role": draw(st.sampled_from(["admin", "member"])),
        "is_champion": draw(st.booleans()),
        "is_executive": draw(st.booleans()),
    }


def _reopen(draw: Draw, as_of: pd.Timestamp, ts: pd.Timestamp | None) -> pd.Timestamp | None:
    """A current-state timestamp: kept when before as_of, else any value at/after as_of."""
    return ts if ts is not None and ts < as_of else _maybe_after(draw, as_of)


def _rewrite_periods(
    draw: Draw, as_of: pd.Timestamp, periods: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for account in sorted({p["account_id"] for p in periods}):
        mine = sorted(
            (p for p in periods if p["account_id"] == account), key=lambda p: p["start_at"]
        )
        kept = [p for p in mine if p["start_at"] < as_of]
        if kept and (kept[-1]["end_at"] is None or kept[-1]["end_at"] >= as_of):
            kept[-1] = {**kept[-1], "end_at": _maybe_after(draw, as_of)}
        last_end = kept[-1]["end_at"] if kept else as_of
        # an account whose whole history lies ahead keeps some future contract, so the
        # rewritten company still has the subscriptions the contract requires
        if last_end is not None and (not kept or draw(st.booleans())):
            base = max(last_end, as_of)
            start = base + pd.Timedelta(days=draw(st.sampled_from([0, 5, 60])))
            # A rewritten future is still an export taken at EXTRACTED: nothing starts later.
            start = min(start, max(base, EXTRACTED - pd.Timedelta(days=1)))
            kept.append(_period(draw, account, start, None))
        out += kept
    return out


def _rewrite_side(
    draw: Draw, as_of: pd.Timestamp, rows: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    def later(r: dict[str, Any], ts: str, **changes: Any) -> dict[str, Any]:
        return {**r, ts: _after(draw, as_of), **changes}

    integ = [
        {**r, "disconnected_at": _reopen(draw, as_of, r["disconnected_at"])}
        for r in rows["integrations"]
        if r["connected_at"] < as_of
    ]
    integ += [
        later(r, "connected_at", integration=r["integration"] + "-new", disconnected_at=None)
        for r in rows["integrations"][:1]
    ]
    tickets = [
        {**r, "resolved_at": _reopen(draw, as_of, r["resolved_at"])}
        for r in rows["tickets"]
        if r["created_at"] < as_of
    ]
    tickets += [
        later(r, "created_at", ticket_id=r["ticket_id"] + "-new", resolved_at=None, sentiment=-1.0)
        for r in rows["tickets"][:2]
    ]
    nps = [r for r in rows["nps_responses"] if r["responded_at"] < as_of]
    nps += [later(r, "responded_at", score=0) for r in rows["nps_responses"][:2]]
    invoices = [_rewrite_invoice(draw, as_of, r) for r in rows["invoices"] if r["due_at"] < as_of]
    invoices += [
        later(r, "due_at", invoice_id=r["invoice_id"] + "-new", paid_at=None, status="failed")
        for r in rows["invoices"][:2]
    ]
    return {"integrations": integ, "tickets": tickets, "nps_responses": nps, "invoices": invoices}


def _rewrite_invoice(draw: Draw, as_of: pd.Timestamp, r: dict[str, Any]) -> dict[str, Any]:
    if r["paid_at"] is not None and r["paid_at"] < as_of:
        return r
    # still unpaid at as_of: its later fate (paid late, failed, open) is free
    status = (
        r["status"] if r["status"] == "void" else draw(st.sampled_from(["paid", "open", "failed"]))
    )
    paid = _maybe_after(draw, as_of)
    return {**r, "paid_at": paid if status == "paid" else None, "status": status}


COLUMNS = {
    name: [
        c.name
        for c in spec.columns
        if c.name not in {"name", "acquisition_channel", "text", "comment"}
    ]
    for name, spec in TABLES.items()
}
COLUMNS["nps_responses"].remove("user_id")


def _source(rows: dict[str, list[dict[str, Any]]]) -> DataSource:
    frames = {name: table(name, r, columns=COLUMNS[name]) for name, r in rows.items()}
    return make_source(frames, extracted_at=EXTRACTED, now=EXTRACTED)


def _spine(rows: dict[str, list[dict[str, Any]]], as_of: pd.Timestamp) -> pd.DataFrame:
    accounts = sorted({r["account_id"] for r in rows["accounts"]})
    return pd.DataFrame({"account_id": accounts, "as_of": [as_of] * len(accounts)})


@settings(max_examples=18, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(company=companies(), data=st.data())
def test_features_ignore_everything_at_or_after_as_of(company: Any, data: st.DataObject) -> None:
    as_of, rows = company
    future = _rewrite_future(data.draw, as_of, rows)
    spine = _spine(rows, as_of)
    before = build_features(source=_source(rows), spine=spine, config=CONFIG)
    after = build_features(source=_source(future), spine=spine, config=CONFIG)
    pd.testing.assert_frame_equal(before, after)


def _remote(periods: list[dict[str, Any]], as_of: pd.Timestamp) -> set[int]:
    """Indexes of periods that cannot touch a label window starting at as_of."""
    grace = pd.Timedelta(days=CONFIG.grace_days)
    out = set()
    for i, p in enumerate(periods):
        later = [
            q["start_at"]
            for q in periods
            if q["account_id"] == p["account_id"] and q["start_at"] > p["start_at"]
        ]
        ends_early = p["end_at"] is not None and p["end_at"] + grace < as_of
        if ends_early and (not later or min(later) < as_of):
            out.add(i)
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(company=companies(), other=companies(), data=st.data())
def test_labels_depend_only_on_subscriptions_touching_the_window(
    company: Any, other: Any, data: st.DataObject
) -> None:
    as_of, rows = company
    spine = _spine(rows, as_of)
    before = build_labels(source=_source(rows), spine=spine, config=CONFIG)
    remote = _remote(rows["subscriptions"], as_of)
    arr = data.draw(st.sampled_from([100.0, 7000.0]))
    subs = [
        {**p, "arr": arr, "plan": "Other"} if i in remote else p
        for i, p in enumerate(rows["subscriptions"])
    ]
    # every other table replaced by another company's, re-keyed onto these accounts
    changed = {name: _rekey(other[1][name], rows["accounts"]) for name in rows}
    changed["accounts"], changed["subscriptions"] = rows["accounts"], subs
    after = build_labels(source=_source(changed), spine=spine, config=CONFIG)
    pd.testing.assert_frame_equal(before, after)


def _rekey(rows: list[dict[str, Any]], accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [a["account_id"] for a in accounts]
    return [r for r in rows if r["account_id"] in ids]
