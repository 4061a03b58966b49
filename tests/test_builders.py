"""Every feature family pinned on a tiny hand-computed data set, and feature absence rules.

The snapshot is taken at AS_OF = 2024-04-01. Windows: 7d = [03-25, 04-01),
14d = [03-18, 04-01) after [03-04, 03-18), 30d = [03-02, 04-01) after [01-31, 03-02),
60d from 01-31, 90d from 01-02. Account "a" has a bit of everything, account "b" nothing
but a subscription; rows dated at or after AS_OF are planted to be ignored.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from features.config import SnapshotConfig
from features.event_map import EventMap
from features.registry import BY_NAME, FEATURES, INFO_COLUMNS, KEY_COLUMNS
from features.snapshots import build_features
from features.source import DataSource
from tests.snapshot_factories import EVENT_MAP, TS, make_source, table

AS_OF = TS("2024-04-01")
OPTIONAL_COLUMNS = {
    "accounts": ["industry", "icp_fit", "csm_owner"],
    "subscriptions": ["seats", "usage_limit", "modules", "renewal_at"],
    "users": ["is_champion", "is_executive"],
    "events": ["quantity"],
    "tickets": ["priority", "sentiment", "resolved_at"],
}


def _sub(
    start: str, end: str | None, arr: float, seats: Any, limit: Any, mods: Any, renew: Any
) -> dict[str, Any]:
    return {
        "account_id": "a",
        "start_at": TS(start),
        "end_at": TS(end) if end else None,
        "arr": arr,
        "seats": seats,
        "usage_limit": limit,
        "modules": mods,
        "renewal_at": TS(renew),
    }


def _event(user: str, day: str, event: str, qty: float = 1.0) -> dict[str, Any]:
    return {
        "account_id": "a",
        "user_id": user,
        "occurred_at": TS(day),
        "event": event,
        "quantity": qty,
    }


def _tables() -> dict[str, pd.DataFrame]:
    accounts = [
        {
            "account_id": "a",
            "created_at": TS("2023-01-01"),
            "segment": "Enterprise",
            "industry": "Tech",
            "icp_fit": "High",
            "csm_owner": "ann",
        },
        {"account_id": "b", "created_at": TS("2024-02-01"), "segment": "SMB"},
    ]
    subs = [
        _sub("2023-01-01", "2023-07-01", 1000.0, 10, 100.0, "m1", "2024-01-01"),
        _sub("2023-07-01", "2024-01-01", 1500.0, 10, 100.0, "m1;m2", "2024-01-01"),
        _sub("2024-01-01", None, 1200.0, 8, 200.0, "m1;m2;m3", "2026-01-01"),
        {"account_id": "b", "start_at": TS("2024-02-10"), "arr": 600.0, "plan": "Starter"},
    ]
    users = [
        {"account_id": "a", "user_id": "u1", "role": "admin", "is_champion": True},
        {"account_id": "a", "user_id": "u2", "is_executive": True},
        {"account_id": "a", "user_id": "u3", "created_at": TS("2024-03-01")},
        {
            "account_id": "a",
            "user_id": "u4",
            "is_champion": True,
            "deactivated_at": TS("2024-02-15"),
        },
        {"account_id": "a", "user_id": "u5", "deactivated_at": TS("2024-05-01")},
        {"account_id": "a", "user_id": "u6", "created_at": TS("2024-04-01")},
    ]
    events = [
        _event("u1", "2024-03-30 10:00", "open"),
        _event("u1", "2024-03-20 10:00", "edit"),
        _event("u2", "2024-03-10 10:00", "open"),
        _event("u3", "2024-03-05 10:00", "sync", 50.0),
        _event("u1", "2024-02-10 10:00", "sync", 30.0),
        _event("u2", "2024-03-15 10:00", "configure"),
        _event("u1", "2024-02-20 10:00", "invite"),
        _event("u1", "2024-03-25 10:00", "invite"),
        _event("u1", "2024-03-28 10:00", "gate"),
        _event("u2", "2024-03-12 10:00", "gate"),
        _event("u1", "2023-06-01 10:00", "new_space"),
        _event("u1", "2023-12-01 10:00", "automate"),
        _event("u1", "2023-05-01 10:00", "open"),
        # metered a year before the last 30 days: [2023-04-02, 2023-05-02)
        _event("u1", "2023-04-10 10:00", "sync", 25.0),
        # at as_of: ignored
        _event("u5", "2024-04-01 00:00", "share"),
        _event("u1", "2024-04-01 00:00", "gate"),
    ]
    return {
        "accounts": table("accounts", accounts),
        "subscriptions": table("subscriptions", subs),
        "users": table("users", users),
        "events": table("events", events),
        "integrations": table("integrations", _integrations()),
        "tickets": table("tickets", _tickets()),
        "nps_responses": table("nps_responses", _nps()),
        "invoices": table("invoices", _invoices()),
    }


def _integrations() -> list[dict[str, Any]]:
    rows = [
        ("crm", "2023-06-01", None),
        ("erp", "2024-02-01", "2024-06-01"),
        ("chat", "2023-01-01", "2024-03-01"),
        ("bi", "2024-03-15", None),
        ("later", "2024-04-01", None),
    ]
    return [
        {
            "account_id": "a",
            "integration": n,
            "connected_at": TS(c),
            "disconnected_at": TS(d) if d else None,
        }
        for n, c, d in rows
    ]


def _tickets() -> list[dict[str, Any]]:
    rows = [
        ("t1", "2024-03-20", "urgent", -0.5, "2024-03-21"),
        ("t2", "2024-03-10", "low", 0.1, "2024-04-02"),
        ("t3", "2024-02-15", "high", 0.0, "2024-02-16 12:00"),
        ("t4", "2023-11-01", "normal", 0.2, "2023-11-02"),
        ("t5", "2023-12-01", "normal", None, None),
        ("t6", "2024-04-01", "urgent", -1.0, None),
    ]
    return [
        {
            "account_id": "a",
            "ticket_id": t,
            "created_at": TS(c),
            "priority": p,
            "sentiment": s,
            "resolved_at": TS(r) if r else None,
        }
        for t, c, p, s, r in rows
    ]


def _nps() -> list[dict[str, Any]]:
    rows = [
        ("u1", "2024-01-15", 9),
        ("u1", "2024-03-01", 5),
        ("u2", "2024-03-01", 7),
        ("u1", "2024-04-05", 10),
    ]
    return [
        {"account_id": "a", "user_id": u, "responded_at": TS(t), "score": s} for u, t, s in rows
    ]


def _invoices() -> list[dict[str, Any]]:
    rows = [
        ("i1", "2024-03-01", "2024-03-05", "paid"),
        ("i2", "2024-02-01", "2024-02-20", "paid"),
        ("i3", "2024-03-15", None, "open"),
        ("i4", "2024-01-20", "2024-04-10", "paid"),
        ("i5", "2024-03-20", None, "void"),
        ("i6", "2024-05-01", None, "open"),
    ]
    return [
        {
            "account_id": "a",
            "invoice_id": i,
            "due_at": TS(d),
            "paid_at": TS(p) if p else None,
            "status": s,
        }
        for i, d, p, s in rows
    ]


EXPECTED_A: dict[str, float | str] = {
    # usage
    "wau": 1,
    "mau": 3,
    "active_users_90d": 3,
    "stickiness": 1 / 3,
    "active_days_30d": 8,
    "events_30d": 8,
    "events_per_active_user_30d": 8 / 3,
    "usage_trend_30d": 3.0,
    "usage_trend_14d": 0.0,
    "active_users_trend_30d": 2.0,
    "days_since_last_activity": 2.0,
    # adoption
    "core_breadth_30d": 2 / 3,
    "core_breadth_change_30d": 2 / 3,
    "advanced_depth_30d": 0.5,
    "advanced_share_30d": 1 / 8,
    "features_newly_adopted_30d": 1,
    "seat_utilisation": 3 / 8,
    "licence_utilisation": 4 / 8,
    "usage_limit_ratio_30d": 0.25,
    "usage_limit_ratio_trend": 0.1,
    "metered_usage_yoy": (50 - 25) / 25,
    "workspaces": 1,
    # people
    "users_active_licences": 4,
    "admins_active_30d": 1,
    "admin_actions_30d": 1,
    "invites_30d": 1,
    "invites_90d": 2,
    "invite_rate_90d": 2 / 10,
    "new_users_60d": 1,
    "users_deactivated_90d": 1,
    # a year earlier (2023-04-02) u1, u2, u4, u5 held licences; now u1, u2, u3, u5
    "licence_growth_365d": 0.0,
    "has_champion": 1,
    "champion_active_14d": 1,
    "champion_departed_90d": 1,
    "executive_active_30d": 1,
    "active_stakeholders_90d": 2,
    # integrations
    "integrations_connected": 3,
    "integrations_change_90d": 1,
    # support: base period [2023-09-04, 2024-03-02) holds t3, t4, t5 over 180 days
    "tickets_30d": 2,
    "tickets_90d": 3,
    "ticket_rate_ratio": 2 / (3 * 30 / 180),
    "urgent_share_90d": 2 / 3,
    "sentiment_90d": (-0.5 + 0.1 + 0.0) / 3,
    "sentiment_trend": -0.2,
    "sentiment_lifetime": (-0.5 + 0.1 + 0.0 + 0.2) / 4,  # t5 has no score
    "resolution_hours_90d": 30.0,
    "open_tickets": 2,
    # voice: two answers at the latest moment are averaged
    "nps_latest": 6.0,
    "nps_change": -3.0,
    "nps_detractor": 1,
    "days_since_nps": 31.0,
    "nps_lifetime": (9 + 5 + 7) / 3,  # the 10 of 2024-04-05 is after AS_OF
    # commercial
    "arr": 1200.0,
    "plan": "Pro",
    "seats": 8,
    "modules_count": 3,
    "tenure_days": 456.0,
    "days_to_renewal": 640.0,
    "billing_term": "multi_year",
    "arr_change_90d": 0.0,
    "arr_change_180d": -0.2,
    "expansions_365d": 1,
    "contractions_365d": 1,
    "invoices_failed_90d": 3,
    "invoices_overdue": 2,
    "days_overdue_max": 72.0,
    "segment": "Enterprise",
    "industry": "Tech",
    "icp_fit": "High",
    "has_owner": 1,
    # gates
    "gate_hits_7d": 1,
    "gate_hits_30d": 2,
}
EXPECTED_B_NUMBERS = {
    "wau": 0,
    "mau": 0,
    "events_30d": 0,
    "days_since_last_activity": 60.0,
    "core_breadth_30d": 0,
    "workspaces": 0,
    "users_active_licences": 0,
    "has_champion": 0,
    "champion_active_14d": 0,
    "integrations_connected": 0,
    "tickets_30d": 0,
    "open_tickets": 0,
    "arr": 600.0,
    "tenure_days": 60.0,
    "invoices_overdue": 0,
    "days_overdue_max": 0,
    "has_owner": 0,
    "gate_hits_30d": 0,
    "expansions_365d": 0,
    "modules_count": 0,
}
EXPECTED_B_MISSING = [
    "stickiness",
    "usage_trend_30d",
    "advanced_share_30d",
    "seat_utilisation",
    "licence_utilisation",
    "usage_limit_ratio_30d",
    "metered_usage_yoy",
    "invite_rate_90d",
    "licence_growth_365d",
    "ticket_rate_ratio",
    "sentiment_90d",
    "sentiment_lifetime",
    "resolution_hours_90d",
    "nps_latest",
    "nps_lifetime",
    "nps_detractor",
    "days_to_renewal",
    "arr_change_90d",
    "seats",
    "industry",
]


def _features(
    frames: dict[str, pd.DataFrame],
    event_map: EventMap = EVENT_MAP,
    spine: pd.DataFrame | None = None,
    **kw: Any,
) -> pd.DataFrame:
    source = make_source(frames, event_map=event_map, extracted_at=TS("2024-06-01"))
    if spine is None:
        spine = pd.DataFrame({"account_id": ["a", "b"], "as_of": [AS_OF, AS_OF]})
    return build_features(source=source, spine=spine, config=SnapshotConfig(), **kw)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return _features(_tables()).set_index("account_id")


@pytest.mark.parametrize("family", sorted({f.family for f in FEATURES}))
def test_family_values_match_hand_computation(features: pd.DataFrame, family: str) -> None:
    names = [n for n in EXPECTED_A if BY_NAME[n].family == family]
    got = {n: features.loc["a", n] for n in names}
    want = {n: EXPECTED_A[n] for n in names}
    for name in names:
        if isinstance(want[name], str):
            assert got[name] == want[name], name
        else:
            assert got[name] == pytest.approx(want[name], abs=1e-9), name


def test_every_registry_feature_is_built_and_pinned(features: pd.DataFrame) -> None:
    assert set(EXPECTED_A) == {f.name for f in FEATURES}
    expected_cols = [*KEY_COLUMNS[1:], *INFO_COLUMNS, *(f.name for f in FEATURES)]
    assert list(features.columns) == expected_cols


def test_empty_account_has_zero_counts_and_nan_ratios(features: pd.DataFrame) -> None:
    b = features.loc["b"]
    for name, value in EXPECTED_B_NUMBERS.items():
        assert b[name] == pytest.approx(value), name
    for name in EXPECTED_B_MISSING:
        assert pd.isna(b[name]), name
    assert b["billing_term"] == "monthly" and b["plan"] == "Starter"


def test_info_columns_and_dtypes(features: pd.DataFrame) -> None:
    assert features.loc["a", "csm_owner"] == "ann" and pd.isna(features.loc["b", "csm_owner"])
    assert features.loc["a", "renewal_at"] == TS("2026-01-01")
    for spec in FEATURES:
        dtype = str(features[spec.name].dtype)
        assert dtype == ("string" if spec.kind == "category" else "float64"), spec.name
    for flag in (f.name for f in FEATURES if f.kind == "bool"):
        assert set(features[flag].dropna()) <= {0.0, 1.0}


def test_partitioning_does_not_change_values() -> None:
    one = _features(_tables(), partitions=1)
    three = _features(_tables(), partitions=3)
    pd.testing.assert_frame_equal(one, three)


def _minimal(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    required = {"accounts", "subscriptions", "users", "events"}
    return {
        name: frame.drop(columns=OPTIONAL_COLUMNS.get(name, []))
        for name, frame in frames.items()
        if name in required
    }


def test_missing_optional_tables_and_columns_remove_their_features() -> None:
    got = _features(_minimal(_tables()))
    expected = {f.name for f in FEATURES if not f.needs}
    built = set(got.columns) - {*KEY_COLUMNS, *INFO_COLUMNS}
    assert built == expected
    # what remains keeps its values
    assert got.loc[got["account_id"] == "a", "mau"].item() == 3


def test_empty_event_roles_remove_their_features() -> None:
    only_core = EventMap(core_features=("open", "edit", "share"))
    got = set(_features(_tables(), event_map=only_core).columns)
    for name in (
        "advanced_depth_30d",
        "advanced_share_30d",
        "usage_limit_ratio_30d",
        "usage_limit_ratio_trend",
        "workspaces",
        "admin_actions_30d",
        "invites_30d",
        "invites_90d",
        "invite_rate_90d",
        "metered_usage_yoy",
        "gate_hits_7d",
        "gate_hits_30d",
    ):
        assert name not in got, name
    assert {"core_breadth_30d", "features_newly_adopted_30d", "mau"} <= got
    nothing = set(_features(_tables(), event_map=EventMap()).columns)
    assert "core_breadth_30d" not in nothing and "features_newly_adopted_30d" not in nothing


def test_sentiment_features_need_a_score_or_text() -> None:
    frames = _tables()
    frames["tickets"] = frames["tickets"].drop(columns=["sentiment"])
    got = _features(frames)
    assert not {"sentiment_90d", "sentiment_trend", "sentiment_lifetime"} & set(got.columns)
    assert "tickets_30d" in got


def test_lifetime_means_read_only_the_past() -> None:
    """Each as_of averages every answer and ticket before it, and nothing after."""
    days = ["2023-10-01", "2023-12-15", "2024-03-02"]
    spine = pd.DataFrame({"account_id": ["a"] * 3, "as_of": [TS(d) for d in days]})
    got = _features(_tables(), spine=spine).set_index("as_of")
    # 2023-10-01: no ticket or answer yet (t4 is 2023-11-01, the first answer 2024-01-15)
    assert got.loc[TS("2023-10-01"), ["sentiment_lifetime", "nps_lifetime"]].isna().all()
    # 2023-12-15: t4 (0.2) and t5 (no score); still no answer
    assert got.loc[TS("2023-12-15"), "sentiment_lifetime"] == pytest.approx(0.2)
    assert pd.isna(got.loc[TS("2023-12-15"), "nps_lifetime"])
    # 2024-03-02: t4, t3 (0.0), t2 (0.1) and the answers 9, 5 and 7 (two on 2024-03-01)
    assert got.loc[TS("2024-03-02"), "sentiment_lifetime"] == pytest.approx(0.3 / 3)
    assert got.loc[TS("2024-03-02"), "nps_lifetime"] == pytest.approx(7.0)


def test_duplicating_an_event_doubles_counts_but_not_users() -> None:
    frames = _tables()
    frames["events"] = pd.concat([frames["events"], frames["events"]], ignore_index=True)
    a = _features(frames).set_index("account_id").loc["a"]
    assert a["events_30d"] == 2 * EXPECTED_A["events_30d"]
    assert a["mau"] == EXPECTED_A["mau"] and a["core_breadth_30d"] == EXPECTED_A["core_breadth_30d"]
    assert math.isclose(a["usage_trend_30d"], EXPECTED_A["usage_trend_30d"])  # type: ignore[arg-type]


def test_builders_leave_the_connection_clean() -> None:
    source: DataSource = make_source(_tables(), extracted_at=TS("2024-06-01"))
    before = set(source.sql("SELECT table_name FROM information_schema.tables")["table_name"])
    spine = pd.DataFrame({"account_id": ["a"], "as_of": [AS_OF]})
    build_features(source=source, spine=spine, config=SnapshotConfig())
    after = set(source.sql("SELECT table_name FROM information_schema.tables")["table_name"])
    assert after == before
