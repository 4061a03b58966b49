"""The snapshot spine: grid dates, ARR > 0 membership, bounds and input checks."""

from __future__ import annotations

import pandas as pd
import pytest

from features.source import DataSource
from features.spine import as_of_grid, build_spine, check_spine
from tests.snapshot_factories import TS, subscriptions_source


def _source(subs: list[dict[str, object]], *, extracted_at: str = "2024-06-15") -> DataSource:
    return subscriptions_source(subs, extracted_at=TS(extracted_at))


def _members(spine: pd.DataFrame, as_of: str) -> set[str]:
    return set(spine.loc[spine["as_of"] == TS(as_of), "account_id"])


def test_month_grid_is_month_starts_at_midnight_within_bounds() -> None:
    grid = as_of_grid(start=TS("2024-01-15 08:00"), end=TS("2024-04-01"), freq="month")
    assert list(grid) == [TS("2024-02-01"), TS("2024-03-01"), TS("2024-04-01")]


def test_week_grid_is_mondays() -> None:
    grid = as_of_grid(start=TS("2024-01-03"), end=TS("2024-01-22"), freq="week")
    assert list(grid) == [TS("2024-01-08"), TS("2024-01-15"), TS("2024-01-22")]
    assert all(d.day_of_week == 0 for d in grid)


def test_grid_rejects_unknown_freq() -> None:
    with pytest.raises(ValueError, match="freq"):
        as_of_grid(start=TS("2024-01-01"), end=TS("2024-02-01"), freq="day")  # type: ignore[arg-type]


def test_spine_keeps_accounts_with_positive_arr_at_as_of() -> None:
    source = _source(
        [
            {"account_id": "a", "start_at": TS("2024-01-01"), "end_at": TS("2024-03-01")},
            {"account_id": "b", "start_at": TS("2024-01-10"), "arr": 0.0},
            {"account_id": "c", "start_at": TS("2024-02-01"), "end_at": None},
        ]
    )
    spine = build_spine(source)
    assert _members(spine, "2024-01-01") == {"a"}
    assert _members(spine, "2024-02-01") == {"a", "c"}
    # end_at is exclusive: an account whose period ends at as_of is gone then
    assert _members(spine, "2024-03-01") == {"c"}
    assert spine["as_of"].max() <= TS("2024-06-15")
    assert spine["as_of"].max() == TS("2024-06-01")


def test_spine_leaves_out_a_gap_between_periods() -> None:
    source = _source(
        [
            {"account_id": "a", "start_at": TS("2024-01-01"), "end_at": TS("2024-02-10")},
            {"account_id": "a", "start_at": TS("2024-04-15"), "end_at": None},
        ]
    )
    dates = set(build_spine(source)["as_of"])
    assert dates == {TS("2024-01-01"), TS("2024-02-01"), TS("2024-05-01"), TS("2024-06-01")}


def test_spine_respects_start_end_and_week_freq() -> None:
    source = _source([{"account_id": "a", "start_at": TS("2024-01-01")}])
    spine = build_spine(source, start=TS("2024-02-01"), end=TS("2024-02-29"), freq="week")
    assert list(spine["as_of"]) == [
        TS(d) for d in ("2024-02-05", "2024-02-12", "2024-02-19", "2024-02-26")
    ]
    assert str(spine["as_of"].dtype).startswith("datetime64")
    assert spine.columns.tolist() == ["account_id", "as_of"]


def test_spine_has_no_duplicate_keys() -> None:
    source = _source(
        [
            {"account_id": "a", "start_at": TS("2024-01-01"), "end_at": TS("2024-01-20")},
            {"account_id": "a", "start_at": TS("2024-01-20"), "end_at": None, "arr": 2400.0},
            {"account_id": "b", "start_at": TS("2024-01-01")},
        ]
    )
    spine = build_spine(source)
    assert not spine.duplicated(["account_id", "as_of"]).any()
    assert len(spine) == 12


def test_spine_bounds_are_checked() -> None:
    source = _source([{"account_id": "a", "start_at": TS("2024-01-01")}])
    with pytest.raises(ValueError, match="after end"):
        build_spine(source, start=TS("2024-05-01"), end=TS("2024-04-01"))
    with pytest.raises(ValueError, match="naive"):
        build_spine(source, start=TS("2024-01-01", tz="UTC"))


def test_check_spine_names_what_is_wrong() -> None:
    good = pd.DataFrame({"account_id": ["a"], "as_of": [TS("2024-01-01")]})
    assert check_spine(good).shape == (1, 2)
    with pytest.raises(ValueError, match="missing column"):
        check_spine(good.drop(columns="as_of"))
    with pytest.raises(ValueError, match="00:00"):
        check_spine(good.assign(as_of=[TS("2024-01-01 06:00")]))
    with pytest.raises(ValueError, match="duplicated"):
        check_spine(pd.concat([good, good]))
    with pytest.raises(ValueError, match="null"):
        check_spine(good.assign(as_of=[pd.NaT]))
