"""Every bad-input case of the data contract is reported with table, column and count."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from rich.table import Table

from features.load import inspect_frames, source_from_frames
from features.validate import InvalidDataError, Issue, ValidationReport
from tests.contract_frames import EVENT_MAP, EXTRACTED, NOW, TS, valid_frames

Frames = dict[str, pd.DataFrame]


def _report(frames: Frames, *, extracted_at: pd.Timestamp | None = EXTRACTED) -> ValidationReport:
    report, source = inspect_frames(frames, event_map=EVENT_MAP, extracted_at=extracted_at, now=NOW)
    assert (source is None) == (not report.ok)
    return report


def _with(frames: Frames, table: str, **columns: Any) -> Frames:
    """The frames with some columns of one table replaced."""
    return {**frames, table: frames[table].assign(**columns)}


def _issue(report: ValidationReport, severity: str, table: str, column: str | None) -> Issue:
    found = [
        i for i in report.issues if (i.severity, i.table, i.column) == (severity, table, column)
    ]
    assert len(found) == 1, report.to_dict()
    return found[0]


def _only_error(report: ValidationReport, table: str, column: str | None, count: int) -> Issue:
    assert not report.ok
    issue = _issue(report, "error", table, column)
    assert issue.count == count
    assert len(report.errors) == 1, report.to_dict()
    return issue


def test_clean_data_passes_without_any_issue() -> None:
    report = _report(valid_frames())
    assert report.ok
    assert report.issues == ()


@pytest.mark.parametrize("table", ["accounts", "subscriptions", "users", "events"])
def test_missing_required_table_is_an_error(table: str) -> None:
    frames = {k: v for k, v in valid_frames().items() if k != table}
    report = _report(frames)
    assert not report.ok
    assert "missing" in _issue(report, "error", table, None).message


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("subscriptions", "arr"),
        ("accounts", "segment"),
        ("events", "occurred_at"),
        ("invoices", "status"),
    ],
)
def test_missing_required_column_is_an_error(table: str, column: str) -> None:
    frames = valid_frames()
    frames[table] = frames[table].drop(columns=[column])
    report = _report(frames)
    issue = _only_error(report, table, column, 0)
    assert "required column is missing" in issue.message


@pytest.mark.parametrize(
    ("table", "column", "values", "bad"),
    [
        ("subscriptions", "arr", ["1200", "lots", "5000"], "lots"),
        ("subscriptions", "seats", ["5", "10.5", "20"], "10.5"),
        ("events", "quantity", ["1", "2", "many", "1", "1", "1", "1"], "many"),
        ("invoices", "amount", ["2400", "5000", "n/a"], "n/a"),
        ("nps_responses", "score", ["9", "ten"], "ten"),
        ("tickets", "sentiment", ["-0.5", "happy"], "happy"),
        ("users", "is_champion", ["true", "maybe", "false"], "maybe"),
    ],
)
def test_non_numeric_value_is_a_wrong_type_error(
    table: str, column: str, values: list[str], bad: str
) -> None:
    frames = _with(valid_frames(), table, **{column: pd.Series(values, dtype="string")})
    issue = _only_error(_report(frames), table, column, 1)
    assert "wrong type" in issue.message
    assert [e[column] for e in issue.examples] == [bad]
    assert "account_id" in issue.examples[0]


def test_column_of_an_impossible_type_is_an_error() -> None:
    frames = _with(valid_frames(), "subscriptions", arr=pd.Series([True, False, True]))
    issue = _issue(_report(frames), "error", "subscriptions", "arr")
    assert "BOOLEAN" in issue.message and "float" in issue.message


def test_unparseable_timestamp_is_an_error_with_examples() -> None:
    created = pd.Series(["2023-01-01", "01/06/2023 noon"], dtype="string")
    frames = _with(valid_frames(), "accounts", created_at=created)
    issue = _only_error(_report(frames), "accounts", "created_at", 1)
    assert "unparseable timestamp" in issue.message
    assert issue.examples == [{"account_id": "b", "created_at": "01/06/2023 noon"}]


@pytest.mark.parametrize(
    ("table", "column"),
    [("accounts", "segment"), ("subscriptions", "plan"), ("events", "user_id"), ("users", "role")],
)
def test_null_in_required_column_is_an_error(table: str, column: str) -> None:
    frames = valid_frames()
    values = frames[table][column].astype("object").tolist()
    values[0] = None
    frames = _with(frames, table, **{column: pd.Series(values, dtype=frames[table][column].dtype)})
    issue = _only_error(_report(frames), table, column, 1)
    assert "null" in issue.message


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("accounts", "account_id"),
        ("users", "user_id"),
        ("tickets", "ticket_id"),
        ("invoices", "invoice_id"),
    ],
)
def test_duplicate_key_is_an_error(table: str, column: str) -> None:
    frames = valid_frames()
    first = frames[table].iloc[[0]]
    frames[table] = pd.concat([frames[table], first], ignore_index=True)
    issue = _issue(_report(frames), "error", table, column)
    assert issue.count == 2 and "duplicate key" in issue.message
    assert issue.examples[0][column] == str(first[column].iloc[0])


def test_duplicate_subscription_start_is_an_error() -> None:
    frames = valid_frames()
    subs = frames["subscriptions"]
    frames["subscriptions"] = pd.concat([subs, subs.iloc[[2]]], ignore_index=True)
    report = _report(frames)
    issue = _issue(report, "error", "subscriptions", "account_id, start_at")
    assert issue.count == 2
    assert {e["account_id"] for e in issue.examples} == {"b"}


def test_overlapping_subscription_periods_are_an_error() -> None:
    # a's first period now ends after its second one starts
    ends = pd.Series([TS("2024-02-01"), None, None], dtype="datetime64[us]")
    issue = _only_error(
        _report(_with(valid_frames(), "subscriptions", end_at=ends)), "subscriptions", "start_at", 1
    )
    assert "overlapping" in issue.message
    assert issue.examples[0]["account_id"] == "a"
    assert issue.examples[0]["start_at"].startswith("2024-01-01")


def test_open_period_followed_by_another_overlaps() -> None:
    ends = pd.Series([None, None, None], dtype="datetime64[us]")
    report = _report(_with(valid_frames(), "subscriptions", end_at=ends))
    assert _issue(report, "error", "subscriptions", "start_at").count == 1


def test_period_ending_at_or_before_its_start_is_an_error() -> None:
    ends = pd.Series([TS("2023-01-01"), None, None], dtype="datetime64[us]")
    issue = _only_error(
        _report(_with(valid_frames(), "subscriptions", end_at=ends)), "subscriptions", "end_at", 1
    )
    assert "not after start_at" in issue.message


def test_negative_arr_is_an_error() -> None:
    frames = _with(valid_frames(), "subscriptions", arr=[1200.0, -10.0, 5000.0])
    issue = _only_error(_report(frames), "subscriptions", "arr", 1)
    assert "negative ARR" in issue.message and issue.examples[0]["arr"] == "-10.0"


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("events", "occurred_at"),
        ("accounts", "created_at"),
        ("nps_responses", "responded_at"),
        ("integrations", "connected_at"),
        ("invoices", "paid_at"),
    ],
)
def test_observed_timestamp_after_extraction_is_an_error(table: str, column: str) -> None:
    frames = valid_frames()
    values = frames[table][column].tolist()
    values[-1] = EXTRACTED + pd.Timedelta(hours=1)
    frames = _with(frames, table, **{column: pd.Series(values, dtype="datetime64[us]")})
    issue = _only_error(_report(frames), table, column, 1)
    assert "after the extraction time 2024-06-01" in issue.message


def test_without_declared_extraction_now_bounds_observed_timestamps() -> None:
    frames = valid_frames()
    late = pd.Series([TS("2023-01-01"), NOW + pd.Timedelta(days=1)], dtype="datetime64[us]")
    assert _report(frames, extracted_at=None).ok
    report = _report(_with(frames, "accounts", created_at=late), extracted_at=None)
    assert _issue(report, "error", "accounts", "created_at").count == 1


def test_forward_looking_dates_may_lie_in_the_future() -> None:
    frames = valid_frames()
    # valid_frames already holds renewal_at 2025-01-01 and due_at 2024-07-01, after extraction
    assert frames["subscriptions"]["renewal_at"].max() > EXTRACTED
    assert frames["invoices"]["due_at"].max() > EXTRACTED
    assert _report(frames).ok


@pytest.mark.parametrize(
    ("table", "column", "values", "words"),
    [
        ("nps_responses", "score", pd.Series([9, 11], dtype="Int64"), "outside 0-10"),
        ("tickets", "sentiment", [-1.5, 0.2], "outside [-1, 1]"),
        ("events", "quantity", [1.0, -3.0, 1.0, 1.0, 1.0, 1.0, 1.0], "negative quantity"),
        (
            "invoices",
            "status",
            pd.Series(["paid", "refunded", "open"], dtype="string"),
            "unknown invoice status",
        ),
    ],
)
def test_out_of_range_values_are_errors(table: str, column: str, values: Any, words: str) -> None:
    issue = _only_error(_report(_with(valid_frames(), table, **{column: values})), table, column, 1)
    assert words in issue.message


def test_negative_invoice_amount_is_a_warning_and_kept() -> None:
    # docs/DATA_CONTRACT.md: a credit note or refund is reported, not refused
    frames = _with(valid_frames(), "invoices", amount=[-100.0, 0.0, -5000.0])
    report, source = inspect_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    assert report.ok and source is not None
    issue = _issue(report, "warning", "invoices", "amount")
    assert issue.count == 2 and "negative invoice amount" in issue.message
    assert [(e["invoice_id"], e["amount"]) for e in issue.examples] == [
        ("i1", "-100.0"),
        ("i3", "-5000.0"),
    ]
    assert report.issues == (issue,)
    kept = source.sql("SELECT invoice_id, amount FROM invoices ORDER BY invoice_id")
    assert list(kept["amount"]) == [-100.0, 0.0, -5000.0]


def test_negative_invoice_amount_as_text_is_the_same_warning() -> None:
    amounts = pd.Series(["2400", "-12.5", "5000"], dtype="string")
    report = _report(_with(valid_frames(), "invoices", amount=amounts))
    issue = _issue(report, "warning", "invoices", "amount")
    assert report.ok and issue.count == 1 and issue.examples[0]["amount"] == "-12.5"


def test_unknown_user_role_is_a_warning_and_kept() -> None:
    roles = pd.Series(["admin", "owner", "admin"], dtype="string")
    frames = _with(valid_frames(), "users", role=roles)
    report, source = inspect_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    assert report.ok and source is not None
    assert _issue(report, "warning", "users", "role").count == 1
    assert "owner" in set(source.sql("SELECT role FROM users")["role"])


def test_rows_of_unknown_accounts_are_dropped_with_a_warning() -> None:
    frames = valid_frames()
    accounts = frames["events"]["account_id"].tolist()
    accounts[:2] = ["ghost", "ghost"]
    frames = _with(frames, "events", account_id=pd.Series(accounts, dtype="string"))
    report, source = inspect_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    assert report.ok and source is not None
    issue = _issue(report, "warning", "events", "account_id")
    assert issue.count == 2 and "dropped" in issue.message
    assert issue.examples[0]["account_id"] == "ghost"
    kept = source.sql(
        "SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE account_id = 'ghost') AS g FROM events"
    )
    assert (kept["n"].item(), kept["g"].item()) == (len(frames["events"]) - 2, 0)


def test_events_of_unknown_users_are_kept_with_a_warning() -> None:
    users = valid_frames()["events"]["user_id"].tolist()
    users[0] = "stranger"
    frames = _with(valid_frames(), "events", user_id=pd.Series(users, dtype="string"))
    report, source = inspect_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    assert report.ok and source is not None
    assert _issue(report, "warning", "events", "user_id").count == 1
    assert source.sql("SELECT COUNT(*) AS n FROM events")["n"].item() == len(frames["events"])


def test_event_map_names_never_seen_are_a_warning() -> None:
    frames = valid_frames()
    events = pd.Series(["open"] * len(frames["events"]), dtype="string")
    report = _report(_with(frames, "events", event=events))
    issue = _issue(report, "warning", "events", "event")
    unseen = {n for names in EVENT_MAP.roles().values() for n in names} - {"open"}
    assert issue.count == len(unseen)
    assert "never occur" in issue.message


def test_event_names_in_no_role_are_counted_most_frequent_first() -> None:
    frames = valid_frames()
    extra = (
        frames["events"]
        .iloc[[0, 0, 0, 1]]
        .assign(event=pd.array(["login", "login", "login", "page"], dtype="string"))
    )
    frames["events"] = pd.concat([frames["events"], extra], ignore_index=True)
    issue = _issue(_report(frames), "warning", "events", "event")
    assert issue.count == 2
    assert issue.examples == [{"event": "login", "rows": 3}, {"event": "page", "rows": 1}]


@pytest.mark.parametrize("table", ["integrations", "tickets", "nps_responses", "invoices"])
def test_absent_optional_table_is_a_warning(table: str) -> None:
    frames = {k: v for k, v in valid_frames().items() if k != table}
    report = _report(frames)
    assert report.ok
    assert "absent" in _issue(report, "warning", table, None).message


def test_every_problem_is_reported_in_one_pass() -> None:
    frames = _with(valid_frames(), "subscriptions", arr=[1200.0, -1.0, 5000.0])
    frames = _with(frames, "invoices", status=pd.Series(["paid", "lost", "open"], dtype="string"))
    frames = {k: v for k, v in frames.items() if k != "users"}
    report = _report(frames)
    found = {(i.table, i.column) for i in report.errors}
    assert found == {("subscriptions", "arr"), ("invoices", "status"), ("users", None)}


def test_invalid_data_error_summarises_every_error() -> None:
    frames = _with(valid_frames(), "subscriptions", arr=[1200.0, -1.0, 5000.0])
    frames = {k: v for k, v in frames.items() if k != "users"}
    with pytest.raises(InvalidDataError) as caught:
        source_from_frames(frames, event_map=EVENT_MAP, extracted_at=EXTRACTED, now=NOW)
    text = str(caught.value)
    assert "2 data contract error(s)" in text
    assert "subscriptions.arr: negative ARR (1 rows); e.g. arr='-1.0'" in text
    assert "users: required table" in text
    assert len(caught.value.report.errors) == 2


def test_report_renders_a_table_and_serialises_to_json() -> None:
    frames = _with(valid_frames(), "subscriptions", arr=[1200.0, -1.0, 5000.0])
    report = _report(frames)
    table = report.render()
    assert isinstance(table, Table) and table.row_count == len(report.issues)
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["ok"] is False and payload["errors"] == 1
    assert payload["issues"][0]["examples"][0]["arr"] == "-1.0"


def test_unknown_frame_name_is_a_warning() -> None:
    frames = {**valid_frames(), "acounts": valid_frames()["accounts"]}
    report = _report(frames)
    assert (
        report.ok and "not a contract table" in _issue(report, "warning", "acounts", None).message
    )


@pytest.mark.parametrize(
    ("table", "start", "end"),
    [
        ("users", "created_at", "deactivated_at"),
        ("integrations", "connected_at", "disconnected_at"),
        ("tickets", "created_at", "resolved_at"),
    ],
)
def test_state_ending_before_it_starts_is_a_warning(table: str, start: str, end: str) -> None:
    frames = valid_frames()
    ends = (frames[table][start] - pd.Timedelta(days=1)).astype("datetime64[us]")
    report = _report(_with(frames, table, **{end: ends}))
    assert report.ok
    assert _issue(report, "warning", table, end).count == len(frames[table])


def test_negative_seats_is_an_error() -> None:
    seats = pd.Series([5, -1, 20], dtype="Int64")
    issue = _only_error(
        _report(_with(valid_frames(), "subscriptions", seats=seats)), "subscriptions", "seats", 1
    )
    assert "negative seats" in issue.message


def test_future_check_names_the_current_time_when_no_extraction_is_declared() -> None:
    late = pd.Series([TS("2023-01-01"), NOW + pd.Timedelta(days=1)], dtype="datetime64[us]")
    report = _report(_with(valid_frames(), "accounts", created_at=late), extracted_at=None)
    assert "current time" in _issue(report, "error", "accounts", "created_at").message


@pytest.mark.parametrize(
    ("table", "severity"), [("accounts", "error"), ("nps_responses", "warning")]
)
def test_empty_table_is_reported(table: str, severity: str) -> None:
    frames = valid_frames()
    frames[table] = frames[table].iloc[0:0]
    report = _report(frames)
    assert _issue(report, severity, table, None).message == "table has no rows"
