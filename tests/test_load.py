"""Loading Parquet folders, CSV folders and DuckDB files into the same typed views."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import TABLES
from features.event_map import DEMO_EVENT_MAP
from features.load import inspect_source, load_source, source_from_frames
from features.readers import SQL_TYPES
from features.source import DataSource
from features.validate import InvalidDataError
from nrr.cli import build_app
from tests.contract_frames import (
    EVENT_MAP,
    EXTRACTED,
    NOW,
    TS,
    valid_frames,
    write_csv,
    write_duckdb,
    write_parquet,
)


def _views(source: DataSource) -> dict[str, pd.DataFrame]:
    """Every typed view, rows in a canonical order."""
    out = {}
    for name in sorted(source.tables):
        cols = [c.name for c in TABLES[name].columns]
        frame = source.sql(f"SELECT * FROM {name} ORDER BY ALL")
        out[name] = frame[cols].reset_index(drop=True)
    return out


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_parquet_csv_duckdb_and_frames_load_to_equal_typed_views(tmp_path: Path) -> None:
    frames = valid_frames()
    sources = {
        "parquet": load_source(
            write_parquet(tmp_path / "pq", frames), extracted_at=EXTRACTED, now=NOW
        ),
        "csv": load_source(write_csv(tmp_path / "csv", frames), extracted_at=EXTRACTED, now=NOW),
        "duckdb": load_source(
            write_duckdb(tmp_path / "db" / "crm.duckdb", frames), extracted_at=EXTRACTED, now=NOW
        ),
        "frames": source_from_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW),
    }
    expected = _views(sources["frames"])
    assert set(expected) == set(TABLES)
    for kind, source in sources.items():
        assert source.event_map == EVENT_MAP, kind
        assert source.data_end == EXTRACTED, kind
        assert dict(source.columns) == {k: frozenset(v.columns) for k, v in frames.items()}, kind
        got = _views(source)
        for name in expected:
            pd.testing.assert_frame_equal(got[name], expected[name], obj=f"{kind}.{name}")


def test_typed_views_have_contract_types(tmp_path: Path) -> None:
    source = load_source(write_csv(tmp_path, valid_frames()), extracted_at=EXTRACTED, now=NOW)
    for name, spec in TABLES.items():
        described = {r[0]: r[1] for r in source.con.execute(f"DESCRIBE {name}").fetchall()}
        assert described == {c.name: SQL_TYPES[c.type] for c in spec.columns}, name


def test_csv_timestamps_with_and_without_offset_are_read_as_utc(tmp_path: Path) -> None:
    write_csv(tmp_path, valid_frames())
    events = pd.read_csv(tmp_path / "events.csv", dtype=str)
    stamps = ["2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z", "2024-05-01 10:00:00"]
    events.loc[:2, "occurred_at"] = stamps
    events.to_csv(tmp_path / "events.csv", index=False)
    source = load_source(tmp_path, extracted_at=EXTRACTED, now=NOW)
    got = source.sql("SELECT occurred_at FROM events WHERE user_id IN ('u1', 'u2')")
    assert set(got["occurred_at"]) == {TS("2024-05-01 10:00:00")}
    assert got["occurred_at"].dt.tz is None


def test_tz_aware_parquet_timestamps_are_converted_to_utc(tmp_path: Path) -> None:
    frames = valid_frames()
    paris = frames["accounts"]["created_at"].dt.tz_localize("Europe/Paris")
    frames["accounts"] = frames["accounts"].assign(created_at=paris)
    source = load_source(write_parquet(tmp_path, frames), extracted_at=EXTRACTED, now=NOW)
    got = source.sql("SELECT account_id, created_at FROM accounts ORDER BY account_id")
    # midnight in Paris is 23:00 (winter) / 22:00 (summer) UTC the day before
    assert list(got["created_at"]) == [TS("2022-12-31 23:00"), TS("2023-05-31 22:00")]


def test_csv_bad_values_are_reported_not_coerced(tmp_path: Path) -> None:
    write_csv(tmp_path, valid_frames())
    subs = pd.read_csv(tmp_path / "subscriptions.csv", dtype=str)
    subs.loc[1, "arr"] = "2,400"
    subs.loc[2, "start_at"] = "June 2023"
    subs.to_csv(tmp_path / "subscriptions.csv", index=False)
    report, source = inspect_source(tmp_path, extracted_at=EXTRACTED, now=NOW)
    assert source is None
    errors = {(i.column, i.count, i.examples[0][str(i.column)]) for i in report.errors}
    assert errors == {("arr", 1, "2,400"), ("start_at", 1, "June 2023")}


def test_data_end_is_declared_extraction_else_latest_observed(tmp_path: Path) -> None:
    folder = write_parquet(tmp_path, valid_frames())
    assert load_source(folder, now=NOW).data_end == TS("2024-05-06")
    (folder / "manifest.yaml").write_text("extracted_at: '2024-06-01T02:00:00+02:00'\nseed: 1\n")
    assert load_source(folder, now=NOW).data_end == TS("2024-06-01")
    assert load_source(folder, extracted_at=TS("2024-05-20"), now=NOW).data_end == TS("2024-05-20")


def test_manifest_extraction_bounds_observed_timestamps(tmp_path: Path) -> None:
    folder = write_parquet(tmp_path, valid_frames())
    (folder / "manifest.yaml").write_text("extracted_at: 2024-05-04\n")
    report, source = inspect_source(folder, extracted_at=None, now=NOW)
    assert source is None
    issue = next(i for i in report.errors if i.table == "events")
    assert (issue.column, issue.count) == ("occurred_at", 2)


def test_bad_manifest_timestamp_is_an_error(tmp_path: Path) -> None:
    folder = write_parquet(tmp_path, valid_frames())
    (folder / "manifest.yaml").write_text("extracted_at: last tuesday\n")
    report, _ = inspect_source(folder, extracted_at=None, now=NOW)
    assert [(i.table, i.column) for i in report.errors] == [("manifest.yaml", "extracted_at")]


def test_missing_event_map_keeps_only_demo_names_that_occur(tmp_path: Path) -> None:
    folder = write_parquet(tmp_path / "own", valid_frames(), event_map=False)
    report, source = inspect_source(folder, extracted_at=EXTRACTED, now=NOW)
    assert any(i.table == "event_map.yaml" and i.severity == "warning" for i in report.issues)
    # this export has its own event names: no demo name occurs, so no role is kept and
    # role features are absent instead of zeros that would read as inactivity
    assert source is not None
    assert all(not names for names in source.event_map.roles().values())

    frames = valid_frames()
    core, invite = DEMO_EVENT_MAP.core_features[0], DEMO_EVENT_MAP.invite_events[0]
    frames["events"]["event"] = frames["events"]["event"].replace({"open": core, "invite": invite})
    folder = write_parquet(tmp_path / "demo_names", frames, event_map=False)
    _, source = inspect_source(folder, extracted_at=EXTRACTED, now=NOW)
    assert source is not None
    kept = {role: names for role, names in source.event_map.roles().items() if names}
    assert kept == {"core_features": (core,), "invite_events": (invite,)}


def test_an_explicit_event_map_is_kept_even_where_names_never_occur(tmp_path: Path) -> None:
    folder = write_parquet(tmp_path, valid_frames())
    (folder / "event_map.yaml").write_text("core_features: [open, never_seen]\n")
    _, source = inspect_source(folder, extracted_at=EXTRACTED, now=NOW)
    assert source is not None and source.event_map.core_features == ("open", "never_seen")


def test_malformed_event_map_is_an_error_naming_the_key(tmp_path: Path) -> None:
    folder = write_parquet(tmp_path, valid_frames())
    (folder / "event_map.yaml").write_text("core_feature: [open]\n")
    report, source = inspect_source(folder, extracted_at=EXTRACTED, now=NOW)
    assert source is None
    [issue] = report.errors
    assert issue.table == "event_map.yaml" and "core_feature" in issue.message


def test_parquet_is_preferred_over_csv_with_a_warning(tmp_path: Path) -> None:
    frames = valid_frames()
    write_parquet(tmp_path, frames)
    frames["accounts"].assign(segment="from csv").to_csv(tmp_path / "accounts.csv", index=False)
    report, source = inspect_source(tmp_path, extracted_at=EXTRACTED, now=NOW)
    assert source is not None
    assert (
        "using accounts.parquet"
        in next(i for i in report.warnings if i.table == "accounts").message
    )
    assert "from csv" not in set(source.sql("SELECT segment FROM accounts")["segment"])


@pytest.mark.parametrize("name", ["nowhere", "notes.txt"])
def test_path_that_is_not_a_source_is_one_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    report, source = inspect_source(tmp_path / name, extracted_at=None, now=NOW)
    assert source is None and len(report.issues) == 1 and not report.ok
    assert name in report.issues[0].message


def test_load_source_raises_with_the_report(tmp_path: Path) -> None:
    frames = valid_frames()
    frames["subscriptions"] = frames["subscriptions"].assign(arr=[1.0, -2.0, 3.0])
    with pytest.raises(InvalidDataError) as caught:
        load_source(write_parquet(tmp_path, frames), extracted_at=EXTRACTED, now=NOW)
    assert [(i.table, i.column, i.count) for i in caught.value.report.errors] == [
        ("subscriptions", "arr", 1)
    ]


def test_validation_writes_nothing_into_the_data_folder(tmp_path: Path) -> None:
    write_parquet(tmp_path / "pq", valid_frames())
    write_duckdb(tmp_path / "db" / "crm.duckdb", valid_frames())
    before = _snapshot(tmp_path)
    for path in (tmp_path / "pq", tmp_path / "db" / "crm.duckdb"):
        source = load_source(path, extracted_at=EXTRACTED, now=NOW)
        source.sql("SELECT COUNT(*) FROM events")
        source.con.close()
    assert _snapshot(tmp_path) == before


def test_quantity_defaults_to_one_when_absent_or_null() -> None:
    frames = valid_frames()
    nulls = frames["events"]["quantity"].where(frames["events"]["event"] != "sync")
    with_nulls = {**frames, "events": frames["events"].assign(quantity=nulls)}
    source = source_from_frames(with_nulls, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    assert set(source.sql("SELECT quantity FROM events")["quantity"]) == {1.0}
    absent = {**frames, "events": frames["events"].drop(columns=["quantity"])}
    source = source_from_frames(absent, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    assert set(source.sql("SELECT quantity FROM events")["quantity"]) == {1.0}
    assert not source.has("events", "quantity")


def test_sentiment_is_scored_from_text_when_the_column_is_absent() -> None:
    frames = valid_frames()
    frames["tickets"] = frames["tickets"].drop(columns=["sentiment"])
    source = source_from_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    got = source.sql("SELECT ticket_id, sentiment FROM tickets ORDER BY ticket_id")
    assert got["sentiment"].iloc[0] < 0 < got["sentiment"].iloc[1]
    assert source.has("tickets", "text") and not source.has("tickets", "sentiment")


def test_given_sentiment_is_kept() -> None:
    source = source_from_frames(
        valid_frames(), event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW
    )
    got = source.sql("SELECT sentiment FROM tickets ORDER BY ticket_id")["sentiment"]
    assert list(got) == [-0.8, 0.7]


def test_absent_optional_column_is_typed_null_and_not_listed() -> None:
    frames = valid_frames()
    frames["subscriptions"] = frames["subscriptions"].drop(columns=["seats", "renewal_at"])
    source = source_from_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    assert not source.has("subscriptions", "seats") and source.has("subscriptions", "arr")
    got = source.sql("SELECT seats, renewal_at FROM subscriptions")
    assert got["seats"].isna().all() and got["renewal_at"].isna().all()
    types = {r[0]: r[1] for r in source.con.execute("DESCRIBE subscriptions").fetchall()}
    assert (types["seats"], types["renewal_at"]) == ("BIGINT", "TIMESTAMP")


def test_validate_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write_parquet(tmp_path / "good", valid_frames())
    frames = valid_frames()
    frames["subscriptions"] = frames["subscriptions"].assign(arr=[1.0, -2.0, 3.0])
    bad = write_parquet(tmp_path / "bad", frames)
    args = ["validate", "--extracted-at", "2024-06-01"]
    ok = runner.invoke(build_app(), [*args, "--data", str(good)])
    assert ok.exit_code == 0, ok.output
    failed = runner.invoke(build_app(), [*args, "--data", str(bad)])
    assert failed.exit_code == 1
    assert "negative ARR" in failed.output and "subscriptions" in failed.output
    missing = runner.invoke(build_app(), ["validate", "--data", str(tmp_path / "none")])
    assert missing.exit_code == 1


def test_unreadable_table_file_is_one_error(tmp_path: Path) -> None:
    folder = write_parquet(tmp_path, valid_frames())
    (folder / "events.parquet").write_bytes(b"not parquet")
    report, source = inspect_source(folder, extracted_at=EXTRACTED, now=NOW)
    assert source is None
    [issue] = report.errors
    assert (issue.table, issue.column) == ("events", None) and "cannot read" in issue.message


def test_csv_tickets_without_sentiment_are_scored_from_text(tmp_path: Path) -> None:
    frames = valid_frames()
    frames["tickets"] = frames["tickets"].drop(columns=["sentiment"])
    source = load_source(write_csv(tmp_path, frames), extracted_at=EXTRACTED, now=NOW)
    got = source.sql("SELECT sentiment FROM tickets ORDER BY ticket_id")["sentiment"]
    assert got.iloc[0] < 0 < got.iloc[1]
    kinds = source.sql("SELECT table_name, table_type FROM information_schema.tables")
    # text tables are materialised once, typed, instead of re-parsed on every query
    assert set(kinds.loc[kinds["table_name"].isin(list(TABLES)), "table_type"]) == {"BASE TABLE"}


@pytest.mark.parametrize(
    "command",
    [
        ["snapshots", "--out", "{out}/snapshots.parquet"],
        ["train", "--workdir", "{out}/mlops"],
        ["backtest-forecast", "--out", "{out}/backtest.csv"],
        ["forecast", "--out", "{out}/report"],
        ["health", "--as-of", "2024-05-01", "--out", "{out}/health.csv"],
        ["drift", "--workdir", "{out}/mlops"],
    ],
    ids=lambda c: c[0],
)
def test_every_command_reading_an_export_reports_a_contract_error_and_writes_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    frames = valid_frames()
    frames["accounts"] = frames["accounts"].drop(columns=["segment"])
    bad = write_parquet(tmp_path / "bad", frames)
    out = tmp_path / "out"
    args = [a.format(out=out) for a in command]
    result = CliRunner().invoke(build_app(), [*args, "--data", str(bad)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a report, not a traceback
    text = " ".join(result.output.split())  # the report table wraps with the path's length
    assert "1 error(s)" in text and "segment" in text and "required" in text
    assert not out.exists()
