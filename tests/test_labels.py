"""Labels pinned on hand-computed subscription histories, and snapshot-level invariants."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import SnapshotConfig
from features.labels import build_labels
from features.snapshots import build_snapshots
from features.source import DataSource
from features.spine import build_spine
from nrr.cli import build_app
from tests.snapshot_factories import TS, subscriptions_source, table

DATA_END = TS("2024-07-15")
HISTORIES = [
    # grace: a 15-day lapse (< 30 grace days) is a continuation: +500 at 03-25, no churn
    {
        "account_id": "grace",
        "start_at": TS("2024-01-01"),
        "end_at": TS("2024-03-10"),
        "arr": 1000.0,
    },
    {"account_id": "grace", "start_at": TS("2024-03-25"), "arr": 1500.0},
    # react: a 52-day lapse: churn at 03-10, the return at higher ARR is no expansion
    {
        "account_id": "react",
        "start_at": TS("2024-01-01"),
        "end_at": TS("2024-03-10"),
        "arr": 1000.0,
    },
    {"account_id": "react", "start_at": TS("2024-05-01"), "arr": 2000.0},
    # upsell mid-term (+800 at 02-15), then contraction (-600 at 04-20)
    {
        "account_id": "upsell",
        "start_at": TS("2024-01-01"),
        "end_at": TS("2024-02-15"),
        "arr": 1000.0,
    },
    {
        "account_id": "upsell",
        "start_at": TS("2024-02-15"),
        "end_at": TS("2024-04-20"),
        "arr": 1800.0,
    },
    {"account_id": "upsell", "start_at": TS("2024-04-20"), "arr": 1200.0},
    # zero: moving onto a zero-ARR period is churn at the end of the paid one
    {"account_id": "zero", "start_at": TS("2024-01-01"), "end_at": TS("2024-02-20"), "arr": 1000.0},
    {"account_id": "zero", "start_at": TS("2024-02-20"), "arr": 0.0},
]


def _source(subs: list[dict[str, object]] = HISTORIES) -> DataSource:
    return subscriptions_source(subs, extracted_at=DATA_END)


def _labels(rows: list[tuple[str, str]], *, grace_days: int = 30) -> pd.DataFrame:
    spine = pd.DataFrame({"account_id": [a for a, _ in rows], "as_of": [TS(d) for _, d in rows]})
    config = SnapshotConfig(grace_days=grace_days)
    return build_labels(source=_source(), spine=spine, config=config).set_index(
        ["account_id", "as_of"]
    )


def _row(labels: pd.DataFrame, account: str, as_of: str) -> pd.Series:
    return labels.loc[(account, TS(as_of))]


def test_lapse_within_grace_is_continuation_with_expansion() -> None:
    labels = _labels([("grace", "2024-01-01"), ("grace", "2024-04-01")])
    first = _row(labels, "grace", "2024-01-01")
    assert bool(first["churned"]) is False and pd.isna(first["churn_at"])
    assert bool(first["expanded"]) is True and first["expansion_arr"] == 500.0
    later = _row(labels, "grace", "2024-04-01")
    assert bool(later["expanded"]) is False and later["expansion_arr"] == 0.0


def test_lapse_beyond_grace_is_churn_and_return_is_not_expansion() -> None:
    labels = _labels([("react", "2024-01-01"), ("react", "2024-03-01")])
    for as_of in ("2024-01-01", "2024-03-01"):
        row = _row(labels, "react", as_of)
        assert bool(row["churned"]) is True
        assert row["churn_at"] == TS("2024-03-10")
        assert bool(row["expanded"]) is False


def test_shorter_grace_turns_the_lapse_into_churn() -> None:
    row = _row(_labels([("grace", "2024-01-01")], grace_days=10), "grace", "2024-01-01")
    assert bool(row["churned"]) is True and row["churn_at"] == TS("2024-03-10")
    assert bool(row["expanded"]) is False


def test_upsell_and_contraction_amounts_by_window() -> None:
    labels = _labels([("upsell", d) for d in ("2024-01-01", "2024-02-01", "2024-03-01")])
    jan, feb, mar = (_row(labels, "upsell", d) for d in ("2024-01-01", "2024-02-01", "2024-03-01"))
    assert (jan["expansion_arr"], jan["contraction_arr"]) == (800.0, 0.0)
    assert bool(feb["expanded"]) and bool(feb["contracted"])
    assert (feb["expansion_arr"], feb["contraction_arr"]) == (800.0, 600.0)
    assert (bool(mar["expanded"]), mar["contraction_arr"]) == (False, 600.0)
    assert not any(bool(r["churned"]) for r in (jan, feb, mar))


def test_move_to_zero_arr_is_churn_not_contraction() -> None:
    row = _row(_labels([("zero", "2024-01-01")]), "zero", "2024-01-01")
    assert bool(row["churned"]) is True and row["churn_at"] == TS("2024-02-20")
    assert bool(row["contracted"]) is False


def test_horizon_window_is_half_open() -> None:
    # 2023-12-11 + 90 days = 2024-03-10, the churn date: outside [as_of, as_of + 90d)
    labels = _labels([("react", "2023-12-11"), ("react", "2023-12-12"), ("react", "2024-03-10")])
    assert bool(_row(labels, "react", "2023-12-11")["churned"]) is False
    assert bool(_row(labels, "react", "2023-12-12")["churned"]) is True
    assert bool(_row(labels, "react", "2024-03-10")["churned"]) is True


def test_tail_rows_are_unlabelled_with_null_labels() -> None:
    labels = _labels([("react", "2024-04-16"), ("react", "2024-04-17"), ("react", "2024-06-01")])
    assert bool(_row(labels, "react", "2024-04-16")["labelled"]) is True
    for as_of in ("2024-04-17", "2024-06-01"):
        row = _row(labels, "react", as_of)
        assert bool(row["labelled"]) is False
        assert pd.isna(row["churned"]) and pd.isna(row["expanded"])
        assert pd.isna(row["expansion_arr"]) and pd.isna(row["churn_at"])


def test_label_dtypes_and_order_follow_the_spine() -> None:
    rows = [("upsell", "2024-03-01"), ("grace", "2024-01-01"), ("react", "2024-06-01")]
    labels = _labels(rows).reset_index()
    assert list(zip(labels["account_id"], labels["as_of"], strict=True)) == [
        (a, TS(d)) for a, d in rows
    ]
    assert labels["labelled"].dtype == bool
    assert str(labels["churned"].dtype) == "boolean"
    assert labels["expansion_arr"].dtype == "float64"


def test_snapshots_have_unique_keys_and_no_account_after_its_churn() -> None:
    source = _source()
    spine = build_spine(source, freq="week")
    snaps = build_snapshots(source=source, spine=spine, config=SnapshotConfig())
    assert not snaps.duplicated(["account_id", "as_of"]).any()
    subs = pd.DataFrame(HISTORIES)
    churns = snaps.loc[snaps["churned"].fillna(False).astype(bool), ["account_id", "churn_at"]]
    assert not churns.empty
    for account, churn_at in churns.drop_duplicates().itertuples(index=False):
        starts = subs[
            (subs["account_id"] == account) & (subs["start_at"] > churn_at) & (subs["arr"] > 0)
        ]
        back = starts["start_at"].min() if not starts.empty else TS.max
        mine = snaps[snaps["account_id"] == account]["as_of"]
        assert not ((mine >= churn_at) & (mine < back)).any(), (account, churn_at)


def test_min_tenure_drops_young_snapshots() -> None:
    source = _source()
    spine = build_spine(source)
    young = build_snapshots(source=source, spine=spine, config=SnapshotConfig(min_tenure_days=0))
    # accounts were created 2023-01-01 (factory default): 400 days cuts Jan 2024 rows
    old = build_snapshots(source=source, spine=spine, config=SnapshotConfig(min_tenure_days=400))
    assert len(old) < len(young)
    assert (old["as_of"] >= TS("2023-01-01") + pd.Timedelta(days=400)).all()


@pytest.mark.parametrize("bad", [{"as_of": [TS("2024-01-01 12:00")]}, {"as_of": [pd.NaT]}])
def test_labels_reject_a_bad_spine(bad: dict[str, list[object]]) -> None:
    spine = pd.DataFrame({"account_id": ["react"], **bad})
    with pytest.raises(ValueError, match="spine"):
        build_labels(source=_source(), spine=spine, config=SnapshotConfig())


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A small simulated company and its snapshots written by `nrr snapshots`."""
    from features.simulate import SimulationConfig, write_company

    data = tmp_path_factory.mktemp("company")
    write_company(data, SimulationConfig(accounts=150, months=24, seed=3))
    out = data / "snapshots.parquet"
    result = CliRunner().invoke(build_app(), ["snapshots", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "label rates" in result.output
    return data, pd.read_parquet(out)


@pytest.mark.slow
def test_simulated_snapshots_keys_and_rows_after_churn(
    simulated: tuple[Path, pd.DataFrame],
) -> None:
    data, snaps = simulated
    assert not snaps.duplicated(["account_id", "as_of"]).any()
    churns = snaps[snaps["churned"].fillna(False)].groupby("account_id")["churn_at"].min()
    later = snaps.merge(churns.rename("first_churn"), on="account_id")
    later = later[later["as_of"] > later["first_churn"]]
    subs = pd.read_parquet(data / "subscriptions.parquet")
    starts = subs.assign(start_at=_naive(subs["start_at"]))[["account_id", "start_at"]]
    # a row after a churn is only legitimate when a new period (reactivation) began since
    restarted = later.merge(starts, on="account_id")
    restarted = restarted[
        (restarted["start_at"] > restarted["first_churn"])
        & (restarted["start_at"] <= restarted["as_of"])
    ]
    assert set(map(tuple, later[["account_id", "as_of"]].to_numpy())) == set(
        map(tuple, restarted[["account_id", "as_of"]].to_numpy())
    )


@pytest.mark.slow
def test_simulated_label_rates_track_the_oracle(simulated: tuple[Path, pd.DataFrame]) -> None:
    data, snaps = simulated
    oracle = pd.read_parquet(data / "oracle.parquet")
    oracle = oracle.assign(as_of=_naive(oracle["as_of"]))
    joined = snaps[snaps["labelled"]].merge(oracle, on=["account_id", "as_of"], how="left")
    assert joined["p_churn"].notna().all()
    for label, prob in (("churned", "p_churn"), ("expanded", "p_expand")):
        observed = joined[label].astype("float64").mean()
        assert abs(observed - joined[prob].mean()) < 0.04, label


def test_cli_refuses_invalid_data_and_writes_nothing(tmp_path: Path) -> None:
    table("accounts", [{"account_id": "a"}]).to_parquet(tmp_path / "accounts.parquet")
    out = tmp_path / "snaps.parquet"
    result = CliRunner().invoke(
        build_app(), ["snapshots", "--data", str(tmp_path), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "subscriptions" in result.output
    assert not out.exists()


def _naive(values: pd.Series) -> pd.Series:
    ts = pd.to_datetime(values)
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.astype("datetime64[us]")
