"""Seat-pressure features and the month-to-month renewal date, pinned on tiny frames.

The snapshot is taken at AS_OF = 2024-04-01: 90 days back is 2024-01-02, a year back
(365 days) is 2023-04-02, and the metered window of a year earlier is
[2023-04-02, 2023-05-02).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from features.config import SnapshotConfig
from features.snapshots import build_features
from tests.snapshot_factories import TS, make_source, table

AS_OF = TS("2024-04-01")


def _event(account: str, user: str, day: str, event: str, qty: float = 1.0) -> dict[str, Any]:
    return {
        "account_id": account,
        "user_id": user,
        "occurred_at": TS(day),
        "event": event,
        "quantity": qty,
    }


def _frames() -> dict[str, pd.DataFrame]:
    accounts = [{"account_id": a, "created_at": TS("2022-06-01")} for a in ("m", "y")]
    subs = [
        # month-to-month since 2024-01-15 (77 days before as_of)
        {"account_id": "m", "start_at": TS("2024-01-15"), "seats": 4, "usage_limit": 100.0},
        # annual: the committed term ends on renewal_at
        {
            "account_id": "y",
            "start_at": TS("2023-06-01"),
            "seats": 2,
            "usage_limit": 100.0,
            "renewal_at": TS("2024-06-01"),
        },
    ]
    users = [
        {"account_id": "m", "user_id": "m1", "created_at": TS("2023-01-01")},
        {"account_id": "m", "user_id": "m2", "created_at": TS("2023-09-01")},
        {"account_id": "m", "user_id": "m3", "created_at": TS("2024-02-01")},
        # left before as_of: no longer holds a licence (but held one a year ago)
        {
            "account_id": "m",
            "user_id": "m4",
            "created_at": TS("2023-01-01"),
            "deactivated_at": TS("2024-03-01"),
        },
        # leaves after as_of: still licensed at as_of
        {
            "account_id": "m",
            "user_id": "m5",
            "created_at": TS("2023-01-01"),
            "deactivated_at": TS("2024-05-01"),
        },
        # provisioned at as_of: unknown then
        {"account_id": "m", "user_id": "m6", "created_at": AS_OF},
        {"account_id": "y", "user_id": "y1", "created_at": TS("2023-01-01")},
    ]
    events = [
        _event("m", "m1", "2024-03-20 10:00", "open"),
        _event("m", "m1", "2024-03-21 10:00", "invite"),
        _event("m", "m2", "2024-02-01 10:00", "invite"),
        _event("m", "m2", "2024-01-10 10:00", "sync", 30.0),
        _event("m", "m1", "2024-03-10 10:00", "sync", 60.0),
        # a year earlier, inside [2023-04-02, 2023-05-02)
        _event("m", "m1", "2023-04-20 10:00", "sync", 40.0),
        # outside both windows: ignored by the year-over-year ratio and the 90-day rate
        _event("m", "m1", "2023-05-10 10:00", "sync", 500.0),
        _event("m", "m1", "2023-12-20 10:00", "invite"),
        # at as_of: ignored
        _event("m", "m1", "2024-04-01 00:00", "invite"),
        _event("m", "m1", "2024-04-01 00:00", "sync", 900.0),
        _event("y", "y1", "2024-03-15 10:00", "sync", 10.0),
    ]
    return {
        "accounts": table("accounts", accounts),
        "subscriptions": table("subscriptions", subs),
        "users": table("users", users),
        "events": table("events", events),
    }


def _features(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    source = make_source(frames, extracted_at=TS("2024-06-01"))
    spine = pd.DataFrame({"account_id": ["m", "y"], "as_of": [AS_OF, AS_OF]})
    return build_features(source=source, spine=spine, config=SnapshotConfig()).set_index(
        "account_id"
    )


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return _features(_frames())


def test_only_committed_terms_have_days_to_renewal(features: pd.DataFrame) -> None:
    # month-to-month has no committed renewal: absent, not a fake 0-30 day countdown
    assert features.loc["m", "billing_term"] == "monthly"
    assert pd.isna(features.loc["m", "days_to_renewal"])
    assert features.loc["y", "billing_term"] == "annual"
    assert features.loc["y", "days_to_renewal"] == pytest.approx(61.0)


def test_licence_utilisation_counts_users_holding_a_licence_at_as_of(
    features: pd.DataFrame,
) -> None:
    # m1, m2, m3 and m5 (leaves later) of 4 seats; m4 left, m6 arrives at as_of
    assert features.loc["m", "licence_utilisation"] == pytest.approx(4 / 4)
    assert features.loc["y", "licence_utilisation"] == pytest.approx(1 / 2)


def test_licence_growth_compares_with_a_year_earlier(features: pd.DataFrame) -> None:
    # 2023-04-02: m1, m4, m5 held licences; at as_of: m1, m2, m3, m5
    assert features.loc["m", "licence_growth_365d"] == pytest.approx((4 - 3) / 3)
    assert features.loc["y", "licence_growth_365d"] == pytest.approx(0.0)


def test_invite_rate_is_invitations_per_action_in_90_days(features: pd.DataFrame) -> None:
    # [2024-01-02, 2024-04-01): open, 2 invites, 2 syncs = 5 actions
    assert features.loc["m", "invite_rate_90d"] == pytest.approx(2 / 5)
    assert features.loc["y", "invite_rate_90d"] == pytest.approx(0.0)


def test_metered_usage_year_over_year(features: pd.DataFrame) -> None:
    # last 30 days: 60; the same 30 days a year earlier: 40
    assert features.loc["m", "metered_usage_yoy"] == pytest.approx((60 - 40) / 40)
    assert pd.isna(features.loc["y", "metered_usage_yoy"])


def test_rows_at_or_after_as_of_do_not_move_the_new_features(features: pd.DataFrame) -> None:
    frames = _frames()
    later = [
        _event("m", "m1", "2024-04-01 00:00", "invite"),
        _event("m", "m2", "2024-04-20 10:00", "sync", 1000.0),
    ]
    frames["events"] = pd.concat([frames["events"], table("events", later)], ignore_index=True)
    users = frames["users"].copy()
    users.loc[users["user_id"] == "m5", "deactivated_at"] = AS_OF
    frames["users"] = users
    got = _features(frames)
    names = [
        "days_to_renewal",
        "licence_utilisation",
        "licence_growth_365d",
        "invite_rate_90d",
        "metered_usage_yoy",
    ]
    pd.testing.assert_frame_equal(got[names], features[names])
