"""Timestamps as real exports hold them: naive or time-zone aware, any precision, any format.

The matrix writes every timestamp column of the valid test company as one kind (naive,
tz-aware UTC, tz-aware with a non-UTC offset) at one precision (s, ms, us, ns; for CSV
the same precisions as ISO-8601 text) into a Parquet folder, a CSV folder or a DuckDB
file, and checks that validation passes and that the typed views hold the UTC instants
the test computes itself: the instant, cut to the microsecond.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.contract import TABLES
from features.load import inspect_source
from features.validate import ValidationReport
from tests.contract_frames import (
    EXTRACTED,
    NOW,
    TS,
    valid_frames,
    write_csv,
    write_parquet,
)

Frames = dict[str, pd.DataFrame]
UNITS = ("s", "ms", "us", "ns")
# a half-hour, west-of-UTC offset: a sign or minutes slip moves the instant, and the wall
# clock of a UTC midnight falls on the day before
OFFSET = dt.timezone(-dt.timedelta(hours=5, minutes=30))
KINDS: dict[str, dt.tzinfo | None] = {"naive": None, "utc": dt.UTC, "offset": OFFSET}
# added to every timestamp so that each precision has digits to keep or drop
JITTER = pd.Timedelta(seconds=12, microseconds=345678, nanoseconds=912)
# columns naming one row of each table of valid_frames()
ROW_IDS = {
    "accounts": ("account_id",),
    "subscriptions": ("account_id", "plan"),
    "users": ("user_id",),
    "events": ("user_id", "event"),
    "integrations": ("integration",),
    "tickets": ("ticket_id",),
    "nps_responses": ("account_id",),
    "invoices": ("invoice_id",),
    "interventions": ("account_id", "play"),
}
# the DuckDB column type a database export would hold, per kind and precision
DUCKDB_TYPES = {
    False: {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"},
    True: {
        "s": "TIMESTAMP WITH TIME ZONE",
        "ms": "TIMESTAMP WITH TIME ZONE",
        "us": "TIMESTAMP WITH TIME ZONE",
        "ns": "TIMESTAMPTZ_NS",
    },
}


def _timestamp_columns(table: str) -> list[str]:
    return [c.name for c in TABLES[table].columns if c.type == "timestamp"]


def _instants(unit: str) -> Frames:
    """valid_frames() with every timestamp moved by JITTER and cut to `unit`: naive UTC, ns."""
    frames = valid_frames()
    for name, frame in frames.items():
        for col in _timestamp_columns(name):
            moved = (frame[col].astype("datetime64[ns]") + JITTER).dt.floor(unit)
            frames[name] = frames[name].assign(**{col: moved})
    return frames


def _expected(instants: Frames) -> Frames:
    """What the typed views must hold: the instants cut to the microsecond."""
    return {
        name: frame.assign(**{c: frame[c].dt.floor("us") for c in _timestamp_columns(name)})
        for name, frame in instants.items()
    }


def _as_kind(instants: Frames, unit: str, tz: dt.tzinfo | None) -> Frames:
    """The instants as pandas writes them: datetime64[unit], localised to tz when given."""
    out = {}
    for name, frame in instants.items():
        columns = {}
        for col in _timestamp_columns(name):
            values = frame[col].dt.as_unit(unit)
            columns[col] = values if tz is None else values.dt.tz_localize(dt.UTC).dt.tz_convert(tz)
        out[name] = frame.assign(**columns)
    return out


def _iso(value: pd.Timestamp, *, sep: str, digits: int, tz: dt.tzinfo | None, utc: str) -> str:
    """ISO-8601 text of an instant (naive UTC), written by hand rather than by pandas."""
    if tz is None:
        wall, suffix = value, ""
    elif tz is dt.UTC:
        wall, suffix = value, utc
    else:
        shift = tz.utcoffset(None)
        assert shift is not None
        minutes = int(shift.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        wall = value + shift
        suffix = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    fraction = f"{wall.microsecond * 1000 + wall.nanosecond:09d}"[:digits]
    text = f"{wall:%Y-%m-%d}{sep}{wall:%H:%M:%S}" + (f".{fraction}" if digits else "")
    return text + suffix


# how each precision is spelled in CSV: separator, fraction digits, how UTC is marked
CSV_STYLES = {
    "s": ("T", 0, "Z"),
    "ms": (" ", 3, "+00:00"),
    "us": ("T", 6, "Z"),
    "ns": (" ", 9, "+00:00"),
}


def _as_text(instants: Frames, unit: str, tz: dt.tzinfo | None) -> Frames:
    sep, digits, utc = CSV_STYLES[unit]
    out = {}
    for name, frame in instants.items():
        columns = {
            col: pd.Series(
                [
                    None if pd.isna(v) else _iso(v, sep=sep, digits=digits, tz=tz, utc=utc)
                    for v in frame[col]
                ],
                dtype="string",
            )
            for col in _timestamp_columns(name)
        }
        out[name] = frame.assign(**columns)
    return out


def _write_duckdb_from_parquet(path: Path, parquet: Path, types: dict[str, str]) -> Path:
    """A DuckDB file made from the Parquet files, each timestamp column stored as `types`."""
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    try:
        for name in TABLES:
            cols = ", ".join(
                f'CAST("{c}" AS {types[c]}) AS "{c}"'
                for c in types
                if c in _timestamp_columns(name)
            )
            source = f"read_parquet('{parquet / f'{name}.parquet'}')"
            con.execute(f"CREATE TABLE {name} AS SELECT * REPLACE ({cols}) FROM {source}")
        stored = con.execute(
            "SELECT DISTINCT data_type FROM information_schema.columns "
            "WHERE column_name IN ('created_at', 'occurred_at', 'due_at')"
        ).fetchall()
    finally:
        con.close()
    # the database holds the intended type, not what pandas or Parquet would have made of it
    assert {r[0] for r in stored} == set(types.values())
    (path.parent / "event_map.yaml").write_text((parquet / "event_map.yaml").read_text())
    return path


def _write(fmt: str, folder: Path, instants: Frames, unit: str, tz: dt.tzinfo | None) -> Path:
    if fmt == "csv":
        return write_csv(folder / "csv", _as_text(instants, unit, tz))
    parquet = write_parquet(folder / "pq", _as_kind(instants, unit, tz))
    if fmt == "parquet":
        return parquet
    all_columns = {c for name in TABLES for c in _timestamp_columns(name)}
    types = dict.fromkeys(all_columns, DUCKDB_TYPES[tz is not None][unit])
    return _write_duckdb_from_parquet(folder / "db" / "crm.duckdb", parquet, types)


def _assert_loaded(path: Path, expected: Frames) -> ValidationReport:
    report, source = inspect_source(path, extracted_at=EXTRACTED, now=NOW)
    assert report.ok and source is not None, report.to_dict()
    for name, frame in expected.items():
        ids, stamps = list(ROW_IDS[name]), _timestamp_columns(name)
        assert not frame.duplicated(ids).any(), f"{ROW_IDS[name]} does not name a row of {name}"
        got = source.sql(f"SELECT {', '.join(ids + stamps)} FROM {name}")
        assert len(got) == len(frame), name
        for col in stamps:
            assert got[col].dt.tz is None, f"{name}.{col} is not naive UTC"
        want = frame[ids + stamps].astype(dict.fromkeys(stamps, "datetime64[us]"))
        merged = want.astype(dict.fromkeys(ids, str)).merge(
            got.astype(dict.fromkeys(ids, str)), on=ids, how="left", suffixes=("", "_got")
        )
        for col in stamps:
            pd.testing.assert_series_equal(
                merged[f"{col}_got"].astype("datetime64[us]"),
                merged[col],
                check_names=False,
                obj=f"{name}.{col}",
            )
    source.con.close()
    return report


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fmt", ["parquet", "csv", "duckdb"])
def test_timestamps_of_every_kind_and_precision_load_as_utc_instants(
    tmp_path: Path, fmt: str, kind: str, unit: str
) -> None:
    instants = _instants(unit)
    path = _write(fmt, tmp_path, instants, unit, KINDS[kind])
    report = _assert_loaded(path, _expected(instants))
    assert report.issues == (), report.to_dict()


def test_the_matrix_covers_sub_microsecond_digits_and_a_day_change() -> None:
    # the ns case has digits below the microsecond to drop, the offset case a wall clock
    # on another day than its UTC instant (so the tests above are not trivially true)
    value = _instants("ns")["accounts"]["created_at"].iloc[0]
    assert (
        value.nanosecond == 912 and _expected(_instants("ns"))["accounts"]["created_at"][0] != value
    )
    text = _iso(value, sep="T", digits=9, tz=OFFSET, utc="Z")
    assert text == "2022-12-31T18:30:12.345678912-05:30"


def _as_dates(frames: Frames) -> Frames:
    """Every timestamp column as dates (datetime.date objects): Parquet date32."""
    return {
        name: frame.assign(
            **{
                c: frame[c].map(lambda v: None if pd.isna(v) else v.date())
                for c in _timestamp_columns(name)
            }
        )
        for name, frame in frames.items()
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv", "duckdb"])
def test_date_only_values_load_as_midnight_utc(tmp_path: Path, fmt: str) -> None:
    days = {
        name: frame.assign(**{c: frame[c].dt.floor("D") for c in _timestamp_columns(name)})
        for name, frame in valid_frames().items()
    }
    dates = _as_dates(days)
    if fmt == "csv":
        path = write_csv(
            tmp_path,
            {n: f.astype(dict.fromkeys(_timestamp_columns(n), "string")) for n, f in dates.items()},
        )
        assert (tmp_path / "accounts.csv").read_text().splitlines()[1].split(",")[2] == "2023-01-01"
    else:
        parquet = write_parquet(tmp_path / "pq", dates)
        path = parquet
        if fmt == "duckdb":
            all_columns = {c for name in TABLES for c in _timestamp_columns(name)}
            types = dict.fromkeys(all_columns, "DATE")
            path = _write_duckdb_from_parquet(tmp_path / "db" / "crm.duckdb", parquet, types)
    _assert_loaded(path, days)


def _replace_csv(folder: Path, table: str, column: str, values: list[str]) -> None:
    frame = pd.read_csv(folder / f"{table}.csv", dtype=str)
    frame[column] = values
    frame.to_csv(folder / f"{table}.csv", index=False)


def test_csv_iso_spellings_of_one_instant_all_load(tmp_path: Path) -> None:
    spellings = [
        "2024-03-01T10:00:00Z",
        "2024-03-01 12:00:00+02:00",
        "2024-03-01T12:00:00+0200",
        "2024-03-01T05:00:00-05",
        "2024-03-01 11:00:00 Europe/Paris",  # CET in March
        "2024-03-01 10:00:00.000000000+00:00",  # pandas' to_csv of a tz-aware ns column
        "2024-03-01 10:00",
    ]
    write_csv(tmp_path, valid_frames())
    _replace_csv(tmp_path, "events", "occurred_at", spellings)
    report, source = inspect_source(tmp_path, extracted_at=EXTRACTED, now=NOW)
    assert report.ok and source is not None, report.to_dict()
    got = source.sql("SELECT occurred_at FROM events")["occurred_at"]
    assert list(got) == [TS("2024-03-01 10:00")] * len(spellings)


def _bad_frames(values: list[str | None]) -> Frames:
    """valid_frames() with events.occurred_at as text: good and bad values mixed."""
    frames = valid_frames()
    frames["events"] = frames["events"].assign(occurred_at=pd.Series(values, dtype="string"))
    return frames


def _write_text_duckdb(folder: Path, frames: Frames) -> Path:
    """A DuckDB file of the frames (events.occurred_at as a VARCHAR column)."""
    parquet = write_parquet(folder / "pq", frames)
    path = folder / "db" / "crm.duckdb"
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    try:
        for name in TABLES:
            con.execute(
                f"CREATE TABLE {name} AS FROM read_parquet('{parquet / f'{name}.parquet'}')"
            )
        stored = con.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'events' AND column_name = 'occurred_at'"
        ).fetchall()
    finally:
        con.close()
    assert stored == [("VARCHAR",)]
    (path.parent / "event_map.yaml").write_text((parquet / "event_map.yaml").read_text())
    return path


WRITERS: dict[str, Callable[[Path, Frames], Path]] = {
    "csv": write_csv,
    "parquet": write_parquet,
    "duckdb": _write_text_duckdb,
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_unparseable_timestamps_are_an_error_naming_table_column_and_value(
    tmp_path: Path, fmt: str
) -> None:
    values = [
        "2024-05-01T10:00:00Z",
        "01/05/2024",  # not ISO-8601: day and month are ambiguous
        "2024-05-03 12:00:00+02:00",
        "2024-05-04 10:00:00 +02:00",  # a space before the offset
        "2024-02-30",  # no such day
        "2024-05-06",
        None,  # a null is not a bad value (occurred_at is required: reported as a null)
    ]
    path = WRITERS[fmt](tmp_path, _bad_frames(values))
    report, source = inspect_source(path, extracted_at=EXTRACTED, now=NOW)
    assert source is None
    unparseable = [i for i in report.errors if "unparseable timestamp" in i.message]
    assert len(unparseable) == 1, report.to_dict()
    [issue] = unparseable
    assert (issue.table, issue.column, issue.count) == ("events", "occurred_at", 3)
    assert [e["occurred_at"] for e in issue.examples] == [
        "01/05/2024",
        "2024-05-04 10:00:00 +02:00",
        "2024-02-30",
    ]
    assert "account_id" in issue.examples[0]
    assert "ISO-8601" in issue.message
    # and no bad value was turned into a NULL: the only other error is the real null
    others = {(i.table, i.column, i.message) for i in report.errors if i is not issue}
    assert others == {("events", "occurred_at", "null in a required column")}
    # the one-line summary of the exception names table, column and a bad value
    assert "events.occurred_at: unparseable timestamp" in report.summary()
    assert "e.g. occurred_at='01/05/2024'" in report.summary()
