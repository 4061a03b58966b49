"""The demo-company simulator: determinism, contract shape, rates, oracle and story."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from features.contract import INVOICE_STATUSES, TABLES, TICKET_PRIORITIES, USER_ROLES
from features.event_map import DEMO_EVENT_MAP, dump_event_map
from features.simulate import SimulationConfig, write_company

END = pd.Timestamp("2026-10-01")
HORIZON = pd.Timedelta(days=90)
GRACE = pd.Timedelta(days=30)
ARROW_TYPES = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}


def _write(folder: Path, **kwargs: int) -> Path:
    write_company(folder, SimulationConfig(**kwargs))
    return folder


# every contract table but interventions, which needs SimulationConfig(plays=...)
WRITTEN = {name: spec for name, spec in TABLES.items() if name != "interventions"}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("company"), accounts=300, months=24, seed=3)


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pq.read_table(folder / f"{name}.parquet").to_pandas()


def _labels(subs: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Our own reading of the contract's labels for (account_id, as_of) pairs."""
    s = subs[subs["arr"] > 0].sort_values(["account_id", "start_at"]).copy()
    g = s.groupby("account_id")
    s["next_start"] = g["start_at"].shift(-1)
    s["prev_end"] = g["end_at"].shift(1)
    s["prev_arr"] = g["arr"].shift(1)
    churn = s[s["end_at"].notna() & ~(s["next_start"] <= s["end_at"] + GRACE)]
    cont = s[s["prev_end"].notna() & (s["start_at"] <= s["prev_end"] + GRACE)]
    moves = cont.assign(delta=cont["arr"] - cont["prev_arr"])
    out = pairs.copy()
    for name, frame, ts, keep in (
        ("churned", churn, "end_at", None),
        ("expanded", moves, "start_at", moves["delta"] > 0),
        ("contracted", moves, "start_at", moves["delta"] < 0),
    ):
        rows = frame if keep is None else frame[keep]
        hit = pairs.merge(rows[["account_id", ts]], on="account_id")
        hit = hit[(hit[ts] >= hit["as_of"]) & (hit[ts] < hit["as_of"] + HORIZON)]
        flagged = hit[["account_id", "as_of"]].drop_duplicates().assign(flag=True)
        merged = pairs.merge(flagged, on=["account_id", "as_of"], how="left")
        out[name] = merged["flag"].fillna(False).astype(bool).to_numpy()
    return out


@pytest.fixture(scope="module")
def labelled(company: Path) -> pd.DataFrame:
    oracle = _read(company, "oracle")
    pairs = oracle[oracle["as_of"] + HORIZON <= END.tz_localize("UTC")]
    labels = _labels(_read(company, "subscriptions"), pairs[["account_id", "as_of"]])
    return pairs.merge(labels, on=["account_id", "as_of"])


def test_same_seed_writes_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", accounts=30, months=8, seed=5)
    b = _write(tmp_path / "b", accounts=30, months=8, seed=5)
    c = _write(tmp_path / "c", accounts=30, months=8, seed=6)
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "events.parquet").read_bytes() != (c / "events.parquet").read_bytes()
    assert (a / "subscriptions.parquet").read_bytes() != (c / "subscriptions.parquet").read_bytes()


def test_every_table_has_the_contract_columns_and_types(company: Path) -> None:
    for name, spec in WRITTEN.items():
        schema = pq.read_schema(company / f"{name}.parquet")
        for col in spec.columns:
            if col.name == "sentiment":
                continue
            assert col.name in schema.names, f"{name}.{col.name} missing"
            assert schema.field(col.name).type == ARROW_TYPES[col.type], f"{name}.{col.name}"
        frame = _read(company, name)
        assert len(frame) > 0, name
        for col in spec.columns:
            if col.name in frame and not col.nullable:
                assert frame[col.name].notna().all(), f"{name}.{col.name} has nulls"
        if spec.key:
            assert not frame.duplicated(list(spec.key)).any(), f"{name} key not unique"
    assert "sentiment" not in pq.read_schema(company / "tickets.parquet").names


def test_categorical_values_are_the_contract_vocabulary(company: Path) -> None:
    assert set(_read(company, "invoices")["status"]) <= set(INVOICE_STATUSES)
    assert set(_read(company, "tickets")["priority"]) <= set(TICKET_PRIORITIES)
    assert set(_read(company, "users")["role"]) == set(USER_ROLES)
    accounts = _read(company, "accounts")
    assert set(accounts["segment"]) == {"SMB", "Mid-Market", "Enterprise"}
    shares = accounts["segment"].value_counts(normalize=True)
    assert 0.45 < shares["SMB"] < 0.75 and shares["Enterprise"] < 0.2
    assert accounts["csm_owner"].isna().any() and accounts["csm_owner"].notna().any()


def test_nothing_observed_at_or_after_the_extraction_and_open_states_are_null(
    company: Path,
) -> None:
    end = END.tz_localize("UTC")
    for name, spec in WRITTEN.items():
        frame = _read(company, name)
        for col in spec.observed:
            assert not (frame[col] >= end).any(), f"{name}.{col} at or after the end"
    subs = _read(company, "subscriptions")
    assert subs["end_at"].isna().any()
    users = _read(company, "users")
    assert users["deactivated_at"].isna().any() and users["deactivated_at"].notna().any()
    assert (
        users["deactivated_at"].dropna() > users.loc[users["deactivated_at"].notna(), "created_at"]
    ).all()
    invoices = _read(company, "invoices")
    assert invoices.loc[invoices["status"] == "paid", "paid_at"].notna().all()
    assert invoices.loc[invoices["status"] != "paid", "paid_at"].isna().all()
    assert (invoices.loc[invoices["due_at"] >= end, "status"] == "open").all()


def test_subscription_periods_never_overlap_and_rows_change_terms(company: Path) -> None:
    subs = _read(company, "subscriptions").sort_values(["account_id", "start_at"])
    g = subs.groupby("account_id")
    prev_end = g["end_at"].shift(1)
    later = prev_end.notna() | g.cumcount().gt(0)
    assert (subs.loc[later, "start_at"] >= prev_end[later]).all()
    assert (subs["end_at"].isna() | (subs["end_at"] > subs["start_at"])).all()
    # one open period at most per account, and it is the last
    assert subs.groupby("account_id")["end_at"].apply(lambda s: s.isna().sum() <= 1).all()
    terms = ["plan", "arr", "seats", "usage_limit", "modules", "renewal_at"]
    contiguous = subs["start_at"] == prev_end
    prev_terms = g[terms].shift(1)
    same = (subs[terms].astype(str) == prev_terms.astype(str)).all(axis=1)
    assert not (contiguous & same).any(), "a new row without a change of terms"
    monthly = subs["renewal_at"].isna()
    assert 0.2 < monthly.mean() < 0.9
    assert (subs.loc[~monthly, "renewal_at"] > subs.loc[~monthly, "start_at"]).all()


def test_event_map_and_manifest_describe_the_data(company: Path) -> None:
    assert (company / "event_map.yaml").read_text() == dump_event_map(DEMO_EVENT_MAP)
    manifest = yaml.safe_load((company / "manifest.yaml").read_text())
    assert pd.Timestamp(manifest["extracted_at"]) == END.tz_localize("UTC")
    assert manifest["generator"] == "nrr-engine demo simulator"
    assert (manifest["seed"], manifest["accounts"], manifest["months"]) == (3, 300, 24)
    names = set(_read(company, "events")["event"].unique())
    mapped = {n for role in DEMO_EVENT_MAP.roles().values() for n in role}
    assert mapped <= names
    assert 2 <= len(names - mapped) <= 3


def test_ninety_day_rates_are_in_the_target_bands(labelled: pd.DataFrame) -> None:
    assert len(labelled) > 2000
    assert 0.03 <= labelled["churned"].mean() <= 0.12
    assert 0.08 <= labelled["expanded"].mean() <= 0.25
    assert 0.005 <= labelled["contracted"].mean() <= 0.08


def test_oracle_is_calibrated_and_ranks_realised_outcomes(labelled: pd.DataFrame) -> None:
    for prob, label, gap in (
        ("p_churn", "churned", 0.02),
        ("p_expand", "expanded", 0.03),
        ("p_contract", "contracted", 0.02),
    ):
        assert abs(labelled[prob].mean() - labelled[label].mean()) < gap, prob
        assert roc_auc_score(labelled[label], labelled[prob]) > 0.75, prob
    assert labelled[["p_churn", "p_expand", "p_contract"]].stack().between(0, 1).all()


def test_oracle_rows_are_the_accounts_with_arr_at_each_month_start(company: Path) -> None:
    subs = _read(company, "subscriptions")
    oracle = _read(company, "oracle")
    grid = oracle["as_of"].drop_duplicates()
    assert (grid.dt.day == 1).all() and (grid.dt.hour == 0).all()
    pairs = subs.merge(grid.to_frame(), how="cross")
    live = pairs[
        (pairs["start_at"] <= pairs["as_of"])
        & (pairs["end_at"].isna() | (pairs["as_of"] < pairs["end_at"]))
        & (pairs["arr"] > 0)
    ]
    expected = set(zip(live["account_id"], live["as_of"], strict=True))
    assert set(zip(oracle["account_id"], oracle["as_of"], strict=True)) == expected


def test_story_unowned_and_low_fit_accounts_churn_more(
    company: Path, labelled: pd.DataFrame
) -> None:
    accounts = _read(company, "accounts")
    rows = labelled.merge(accounts, on="account_id")
    owned = rows.groupby(rows["csm_owner"].notna())["churned"].mean()
    assert owned[False] > owned[True]
    fit = rows.groupby("icp_fit")["churned"].mean()
    assert fit["Low"] > fit["High"]


def test_story_detractors_and_quiet_accounts_churn_more(
    company: Path, labelled: pd.DataFrame
) -> None:
    events = _read(company, "events")[["account_id", "occurred_at"]]
    rows = labelled[["account_id", "as_of", "churned", "p_churn"]]
    recent = rows.merge(events, on="account_id")
    recent = recent[
        (recent["occurred_at"] < recent["as_of"])
        & (recent["occurred_at"] >= recent["as_of"] - pd.Timedelta(days=30))
    ]
    counts = recent.groupby(["account_id", "as_of"]).size().rename("events_30d")
    rows = rows.join(counts, on=["account_id", "as_of"]).fillna({"events_30d": 0})
    seats = _read(company, "subscriptions")[["account_id", "seats"]].groupby("account_id").max()
    rows = rows.join(seats, on="account_id")
    per_seat = rows["events_30d"] / rows["seats"]
    quiet = per_seat < per_seat.median()
    assert rows.loc[quiet, "churned"].mean() > 1.5 * rows.loc[~quiet, "churned"].mean()
    assert rows.loc[quiet, "p_churn"].mean() > rows.loc[~quiet, "p_churn"].mean()


def test_config_rejects_bad_values_and_normalises_the_end() -> None:
    with pytest.raises(ValidationError, match="accounts"):
        SimulationConfig(accounts=0)
    with pytest.raises(ValidationError, match="unknown"):
        SimulationConfig(unknown=1)  # type: ignore[call-arg]
    aware = SimulationConfig(end=pd.Timestamp("2025-01-01T01:00:00+01:00"))
    assert aware.end_at == pd.Timestamp("2025-01-01 00:00")
    assert SimulationConfig(months=12).start_at == pd.Timestamp("2025-10-01")
    assert np.isclose(SimulationConfig(months=12).days, 365)
