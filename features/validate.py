"""Validation of raw tables against the data contract: every problem, in one pass.

Checks are SQL aggregates over the raw views `raw_<table>` (as given) and the parsed views
`_parsed_<table>` (contract types, bad values as NULL) that `validate_tables` creates;
each problem found gets one LIMIT-3 query for example rows. No table is ever pulled into
pandas, so validating millions of events stays fast and memory-bounded. The statements
run in the source's engine (DuckDB, or Spark SQL through features/engine/translate.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd
from rich.table import Table

from features.contract import INVOICE_STATUSES, TABLES, TICKET_PRIORITIES, USER_ROLES
from features.engine import Engine
from features.event_map import EventMap
from features.readers import parse_expr, q, typed_select

Severity = Literal["error", "warning"]
EXAMPLES = 3
TIMESTAMP_EXAMPLES = "2025-03-01, 2025-03-01T12:00:00Z, 2025-03-01 12:00:00.5+02:00"


@dataclass(frozen=True)
class Issue:
    severity: Severity
    table: str | None
    column: str | None
    message: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def where(self) -> str:
        return ".".join(p for p in (self.table, self.column) if p) or "source"


@dataclass(frozen=True)
class ValidationReport:
    issues: tuple[Issue, ...] = ()
    origin: str = "<frames>"

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> Table:
        """A rich table of every issue, errors first."""
        verdict = "OK" if self.ok else f"{len(self.errors)} error(s)"
        title = f"{self.origin}: {verdict}, {len(self.warnings)} warning(s)"
        table = Table(title=title, show_lines=True)
        for name in ("severity", "table", "column", "count", "message", "examples"):
            table.add_column(name, overflow="fold")
        for issue in sorted(self.issues, key=lambda i: i.severity != "error"):
            style = "red" if issue.severity == "error" else "yellow"
            examples = "\n".join(str(e) for e in issue.examples)
            table.add_row(
                f"[{style}]{issue.severity}[/{style}]",
                issue.table or "",
                issue.column or "",
                str(issue.count) if issue.count else "",
                issue.message,
                examples,
            )
        return table

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "issues": [asdict(i) for i in self.issues],
        }

    def summary(self, *, limit: int = 10) -> str:
        """One line per error (at most `limit`), for exception messages."""
        lines = [
            f"{i.where()}: {i.message}"
            + (f" ({i.count} rows)" if i.count else "")
            + _example_value(i)
            for i in self.errors
        ]
        more = [f"... and {len(lines) - limit} more"] if len(lines) > limit else []
        head = f"{self.origin}: {len(lines)} data contract error(s)"
        return "\n".join([head, *lines[:limit], *more])


def _example_value(issue: Issue) -> str:
    """`; e.g. column='value'` from the issue's first example row, if it shows the column."""
    if not issue.examples or issue.column not in issue.examples[0]:
        return ""
    return f"; e.g. {issue.column}={issue.examples[0][issue.column]!r}"


class InvalidDataError(ValueError):
    """The data breaks the contract; `.report` holds every issue found."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.summary())


@dataclass(frozen=True)
class Rule:
    severity: Severity
    table: str
    column: str | None
    where: str  # true for a row with the problem
    message: str
    show: tuple[str, ...]  # columns shown in example rows


Columns = Mapping[str, Mapping[str, str]]


def validate_tables(
    engine: Engine,
    columns: Columns,
    *,
    event_map: EventMap,
    limit: pd.Timestamp,
    limit_name: str = "extraction time",
) -> list[Issue]:
    """Every contract problem of the raw views; creates the `_parsed_<table>` views."""
    issues = _structure(columns)
    for name, raw in columns.items():
        engine.create(
            f"_parsed_{name}",
            f"SELECT {typed_select(name, raw)} FROM raw_{name}",
            kind="view",
            replace=True,
        )
    for name, raw in columns.items():
        rows, found = _scan(engine, f"raw_{name}", _raw_rules(name, raw))
        issues += found if rows else _empty(name)
        issues += _count_rules(
            engine, f"_parsed_{name}", _value_rules(name, raw, columns, limit, limit_name)
        )
        issues += _duplicates(engine, name, raw)
    if {"start_at", "end_at"} <= set(columns.get("subscriptions", {})):
        issues += _overlaps(engine)
    if "event" in columns.get("events", {}):
        issues += _event_names(engine, event_map)
    return issues


def _structure(columns: Columns) -> list[Issue]:
    issues: list[Issue] = []
    for name, spec in TABLES.items():
        if name not in columns:
            if spec.required:
                issues.append(Issue("error", name, None, "required table is missing"))
            else:
                message = "optional table is absent; the features that need it will be absent"
                issues.append(Issue("warning", name, None, message))
            continue
        found = columns[name]
        listed = ", ".join(found) or "none"
        for col in spec.columns:
            if col.name not in found and col.required:
                message = f"required column is missing (columns found: {listed})"
                issues.append(Issue("error", name, col.name, message))
            elif col.name in found and parse_expr(col.name, found[col.name], col.type) is None:
                message = f"wrong type: column has type {found[col.name]}, expected {col.type}"
                issues.append(Issue("error", name, col.name, message))
        absent = [c.name for c in spec.columns if not c.required and c.name not in found]
        if name == "tickets" and "sentiment" in absent and "text" in found:
            absent.remove("sentiment")
            message = "no sentiment column: sentiment is scored from the ticket text (VADER)"
            issues.append(Issue("warning", name, "sentiment", message))
        if absent:
            message = f"optional columns absent (features that need them will be absent): {', '.join(absent)}"
            issues.append(Issue("warning", name, None, message))
    return issues


def _show(name: str, raw: Mapping[str, str], column: str | None) -> tuple[str, ...]:
    keys = [k for k in ("account_id", *TABLES[name].key) if k in raw]
    return tuple(dict.fromkeys([*keys, *([column] if column else [])]))


def _raw_rules(name: str, raw: Mapping[str, str]) -> list[Rule]:
    """Unparseable values and nulls in required columns, seen on the raw values."""
    rules = []
    for spec in TABLES[name].columns:
        if spec.name not in raw:
            continue
        col, show = q(spec.name), _show(name, raw, spec.name)
        parsed = parse_expr(spec.name, raw[spec.name], spec.type)
        if parsed is not None and spec.type != "string":
            what = (
                f"unparseable timestamp (expected ISO-8601: {TIMESTAMP_EXAMPLES})"
                if spec.type == "timestamp"
                else f"wrong type: not a {spec.type}"
            )
            where = f"{col} IS NOT NULL AND ({parsed}) IS NULL"
            rules.append(Rule("error", name, spec.name, where, what, show))
        if not spec.nullable:
            rules.append(
                Rule("error", name, spec.name, f"{col} IS NULL", "null in a required column", show)
            )
    return rules


def _sql_list(values: Sequence[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


_PRIORITIES = ", ".join(TICKET_PRIORITIES)
_STATUSES = ", ".join(INVOICE_STATUSES)
_ROLES = ", ".join(USER_ROLES)
# per table: (severity, column, condition true for a bad row, message)
_DOMAIN: dict[str, tuple[tuple[Severity, str, str, str], ...]] = {
    "subscriptions": (
        ("error", "arr", "arr < 0", "negative ARR"),
        ("error", "end_at", "end_at <= start_at", "end_at is not after start_at"),
        ("error", "seats", "seats < 0", "negative seats"),
        ("error", "usage_limit", "usage_limit < 0", "negative usage_limit"),
    ),
    "events": (("error", "quantity", "quantity < 0", "negative quantity"),),
    "nps_responses": (("error", "score", "score NOT BETWEEN 0 AND 10", "NPS score outside 0-10"),),
    "tickets": (
        ("error", "sentiment", "sentiment NOT BETWEEN -1 AND 1", "sentiment outside [-1, 1]"),
        # priority only feeds the urgent share: an unknown one safely counts as not urgent
        (
            "warning",
            "priority",
            f"priority NOT IN {_sql_list(TICKET_PRIORITIES)}",
            f"unknown priority (known: {_PRIORITIES}); counted as not urgent",
        ),
        ("warning", "resolved_at", "resolved_at < created_at", "resolved before it was created"),
    ),
    "invoices": (
        # a credit note or refund; billing features count invoices, not amounts, so the row
        # is kept, but the data team should know (an unpaid one past due_at counts overdue)
        (
            "warning",
            "amount",
            "amount < 0",
            "negative invoice amount (a credit note or refund?); kept and counted like any invoice",
        ),
        # an unknown status cannot be told apart from void, so overdue amounts would be guesses
        (
            "error",
            "status",
            f"status NOT IN {_sql_list(INVOICE_STATUSES)}",
            f"unknown invoice status (known: {_STATUSES})",
        ),
    ),
    "users": (
        # no score depends on the role, so an unknown one is reported and kept as given
        (
            "warning",
            "role",
            f"role NOT IN {_sql_list(USER_ROLES)}",
            f"unknown role (known: {_ROLES}); kept as given",
        ),
        ("warning", "deactivated_at", "deactivated_at < created_at", "deactivated before created"),
    ),
    "integrations": (
        (
            "warning",
            "disconnected_at",
            "disconnected_at < connected_at",
            "disconnected before connected",
        ),
    ),
}


def _value_rules(
    name: str, raw: Mapping[str, str], columns: Columns, limit: pd.Timestamp, limit_name: str
) -> list[Rule]:
    """Range, domain, time and reference rules on the parsed values."""
    stamp = f"TIMESTAMP '{limit.isoformat(sep=' ')}'"
    late = f"observed timestamp after the {limit_name} {limit}"
    checks: list[tuple[Severity, str, str, str]]
    checks = [("error", c, f"{q(c)} > {stamp}", late) for c in TABLES[name].observed]
    checks += _DOMAIN.get(name, ())
    rules = [
        Rule(severity, name, col, where, message, _show(name, raw, col))
        for severity, col, where, message in checks
        if col in raw
    ]
    show = _show(name, raw, None)
    if name != "accounts" and "account_id" in columns.get("accounts", {}) and "account_id" in raw:
        # NOT EXISTS, not NOT IN: inside a count, Spark runs a null-aware NOT IN as a nested
        # loop (events x accounts), a correlated NOT EXISTS as a hash join; both keys are
        # non-null here, so the two mean the same
        where = f"account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM _parsed_accounts k WHERE k.account_id = _parsed_{name}.account_id)"
        message = "rows reference an account that is not in accounts; they are dropped"
        rules.append(Rule("warning", name, "account_id", where, message, show))
    if name == "events" and "user_id" in columns.get("users", {}) and "user_id" in raw:
        where = "user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM _parsed_users k WHERE k.user_id = _parsed_events.user_id)"
        message = "events of users that are not in users; they are kept"
        rules.append(Rule("warning", name, "user_id", where, message, (*show, "user_id")))
    return rules


def _count_rules(engine: Engine, view: str, rules: Sequence[Rule]) -> list[Issue]:
    """One scan counting every rule's rows, then example rows for the rules that hit."""
    return _scan(engine, view, rules)[1]


def _scan(engine: Engine, view: str, rules: Sequence[Rule]) -> tuple[int, list[Issue]]:
    """The view's row count and an issue per rule that some row breaks, in one scan."""
    counts = "".join(f", COUNT(*) FILTER (WHERE {r.where})" for r in rules)
    row = engine.rows(f"SELECT COUNT(*){counts} FROM {view}")[0]
    issues = [
        Issue(
            r.severity,
            r.table,
            r.column,
            r.message,
            int(n),
            _examples(engine, view, r.where, r.show),
        )
        for r, n in zip(rules, row[1:], strict=True)
        if n
    ]
    return int(row[0]), issues


def _examples(engine: Engine, view: str, where: str, show: Sequence[str]) -> list[dict[str, Any]]:
    cols = ", ".join(f"CAST({q(c)} AS VARCHAR) AS {q(c)}" for c in show) or "*"
    rows = engine.rows(f"SELECT {cols} FROM {view} WHERE {where} LIMIT {EXAMPLES}")
    return [dict(zip(show, r, strict=True)) for r in rows]


def _duplicates(engine: Engine, name: str, raw: Mapping[str, str]) -> list[Issue]:
    key = TABLES[name].key
    if not key or not set(key) <= set(raw):
        return []
    cols = ", ".join(q(k) for k in key)
    view = f"(SELECT *, COUNT(*) OVER (PARTITION BY {cols}) AS copies FROM _parsed_{name})"
    not_null = " AND ".join(f"{q(k)} IS NOT NULL" for k in key)
    rule = Rule(
        "error",
        name,
        ", ".join(key),
        f"copies > 1 AND {not_null}",
        f"duplicate key ({', '.join(key)}); rows sharing a key",
        (*_show(name, raw, None), "copies"),
    )
    return _count_rules(engine, view, [rule])


def _overlaps(engine: Engine) -> list[Issue]:
    # the latest end of all earlier periods, an open period counting as never ending
    view = (
        "(SELECT account_id, start_at, end_at, MAX(COALESCE(end_at, TIMESTAMP 'infinity')) OVER ("
        "PARTITION BY account_id ORDER BY start_at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
        ") AS previous_end FROM _parsed_subscriptions)"
    )
    message = "overlapping subscription periods of one account (a period starts before an earlier one ends)"
    rule = Rule(
        "error",
        "subscriptions",
        "start_at",
        "start_at < previous_end",
        message,
        ("account_id", "start_at", "end_at", "previous_end"),
    )
    return _count_rules(engine, view, [rule])


def _empty(name: str) -> list[Issue]:
    # without accounts or contracts there is nothing to score; other tables may be empty
    severity: Severity = "error" if name in ("accounts", "subscriptions") else "warning"
    return [Issue(severity, name, None, "table has no rows")]


def _event_names(engine: Engine, event_map: EventMap) -> list[Issue]:
    counts = engine.rows(
        "SELECT event, COUNT(*) AS n FROM _parsed_events WHERE event IS NOT NULL GROUP BY event ORDER BY n DESC, event"
    )
    seen = {str(e): int(n) for e, n in counts}
    roles = event_map.roles()
    mapped = {e for names in roles.values() for e in names}
    issues: list[Issue] = []
    unseen = sorted(mapped - set(seen))
    if unseen:
        message = f"{len(unseen)} of {len(mapped)} event_map names never occur in events (the map probably does not fit this data): {', '.join(unseen[:10])}"
        examples = [
            {"event": e, "roles": ", ".join(r for r, v in roles.items() if e in v)}
            for e in unseen[:EXAMPLES]
        ]
        issues.append(Issue("warning", "events", "event", message, len(unseen), examples))
    unmapped = [(e, n) for e, n in seen.items() if e not in mapped]
    if unmapped:
        rows = sum(n for _, n in unmapped)
        message = f"{len(unmapped)} event names in no event_map role ({rows} rows, informational); most frequent: {', '.join(e for e, _ in unmapped[:5])}"
        top: list[dict[str, Any]] = [{"event": e, "rows": n} for e, n in unmapped[:EXAMPLES]]
        issues.append(Issue("warning", "events", "event", message, len(unmapped), top))
    return issues
