"""One grace rule for labels, features and the NRR maths, pinned at its boundary.

A paid period starting exactly `grace_days` after the previous one ended continues it; a
start one day later is churn, then a new relationship. Each user of the rule is checked
on its own output, with the expected values written out here rather than derived from
`features.sql`.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.config import SnapshotConfig
from features.labels import build_labels
from features.snapshots import build_features
from features.sql import GRACE_CONTINUES
from models.revenue.nrr import arr_timeline, decompose
from tests.snapshot_factories import TS, subscriptions_source, table

FIRST_END = TS("2024-03-01")
DATA_END = TS("2024-09-01")
GRACES = (0, 10, 30)


def _histories(grace_days: int) -> list[dict[str, object]]:
    """`edge` returns exactly grace_days after its end, `late` one day later; both at +500."""
    rows: list[dict[str, object]] = []
    for account, gap in (("edge", grace_days), ("late", grace_days + 1)):
        rows.append(
            {
                "account_id": account,
                "start_at": TS("2023-06-01"),
                "end_at": FIRST_END,
                "arr": 1000.0,
            }
        )
        rows.append(
            {
                "account_id": account,
                "start_at": FIRST_END + pd.Timedelta(days=gap),
                "arr": 1500.0,
            }
        )
    return rows


def test_the_boundary_is_stated_as_at_most() -> None:
    assert GRACE_CONTINUES == "<="


@pytest.mark.parametrize("grace_days", GRACES)
def test_labels_continue_at_exactly_grace_days_and_churn_one_day_later(grace_days: int) -> None:
    source = subscriptions_source(_histories(grace_days), extracted_at=DATA_END)
    spine = pd.DataFrame({"account_id": ["edge", "late"], "as_of": [TS("2024-02-15")] * 2})
    labels = build_labels(
        source=source, spine=spine, config=SnapshotConfig(grace_days=grace_days)
    ).set_index("account_id")
    edge, late = labels.loc["edge"], labels.loc["late"]
    # continuation: no churn, the higher ARR is an expansion of the same relationship
    assert not edge["churned"] and pd.isna(edge["churn_at"])
    assert edge["expanded"] and edge["expansion_arr"] == 500.0
    # one day more: churn at the end of the first period, the return is no expansion
    assert late["churned"] and late["churn_at"] == FIRST_END
    assert not late["expanded"] and late["expansion_arr"] == 0.0


@pytest.mark.parametrize("grace_days", GRACES)
def test_features_count_the_change_only_across_a_continuation(grace_days: int) -> None:
    source = subscriptions_source(_histories(grace_days), extracted_at=DATA_END)
    spine = pd.DataFrame({"account_id": ["edge", "late"], "as_of": [TS("2024-06-01")] * 2})
    features = build_features(
        source=source, spine=spine, config=SnapshotConfig(grace_days=grace_days)
    ).set_index("account_id")
    assert features.loc["edge", "expansions_365d"] == 1
    assert features.loc["late", "expansions_365d"] == 0


def _subscriptions(grace_days: int) -> pd.DataFrame:
    subs = table("subscriptions", _histories(grace_days))
    return subs.assign(
        start_at=subs["start_at"].astype("datetime64[ns]"),
        end_at=subs["end_at"].astype("datetime64[ns]"),
    )


@pytest.mark.parametrize("grace_days", GRACES)
def test_nrr_timeline_bridges_exactly_grace_days_and_splits_one_day_later(
    grace_days: int,
) -> None:
    timeline = arr_timeline(_subscriptions(grace_days), data_end=DATA_END, grace_days=grace_days)
    spells = timeline.groupby("account_id")["spell"].apply(list).to_dict()
    assert spells == {"edge": [0, 0], "late": [0, 1]}
    edge = timeline[timeline["account_id"] == "edge"]
    # the gap is bridged: the first interval runs up to the second start
    assert edge["end_at"].iloc[0] == FIRST_END + pd.Timedelta(days=grace_days)


@pytest.mark.parametrize("grace_days", GRACES)
def test_nrr_bridge_books_expansion_for_the_continuation_and_churn_for_the_later_start(
    grace_days: int,
) -> None:
    accounts = pd.DataFrame({"account_id": ["edge", "late"]})
    bridge = decompose(
        _subscriptions(grace_days),
        accounts,
        data_end=DATA_END,
        freq="quarter",
        start=TS("2024-01-01"),
        end=TS("2024-04-01"),
        grace_days=grace_days,
    )
    # Over Q1 both accounts go from 1000 to 1500: edge by expansion (grace 0 keeps its
    # contiguous renewal a continuation too), late by churn and reactivation.
    q1 = bridge.set_index("period_label").loc["2024Q1"]
    assert (q1["starting_arr"], q1["ending_arr"]) == (2000.0, 3000.0)
    assert q1["expansion_arr"] == 500.0
    assert (q1["churned_arr"], q1["churned_logos"], q1["reactivation_arr"]) == (1000.0, 1, 1500.0)
