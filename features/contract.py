"""The data contract (docs/DATA_CONTRACT.md) as data: tables, columns, types, keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["string", "timestamp", "float", "int", "bool"]


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    required: bool = True
    key: tuple[str, ...] = ()
    # Timestamps that record something that already happened: they may not lie after the
    # extraction time. Forward-looking dates (renewal_at, due_at) are not listed here.
    observed: tuple[str, ...] = field(default=())

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


def _c(
    name: str, type_: ColumnType, *, optional: bool = False, nullable: bool = False
) -> ColumnSpec:
    return ColumnSpec(name, type_, required=not optional, nullable=nullable or optional)


TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "accounts",
            (
                _c("account_id", "string"),
                _c("name", "string", optional=True),
                _c("created_at", "timestamp"),
                _c("segment", "string"),
                _c("industry", "string", optional=True),
                _c("icp_fit", "string", optional=True),
                _c("acquisition_channel", "string", optional=True),
                _c("csm_owner", "string", optional=True),
            ),
            key=("account_id",),
            observed=("created_at",),
        ),
        TableSpec(
            "subscriptions",
            (
                _c("account_id", "string"),
                _c("start_at", "timestamp"),
                _c("end_at", "timestamp", nullable=True),
                _c("plan", "string"),
                _c("arr", "float"),
                _c("seats", "int", optional=True),
                _c("usage_limit", "float", optional=True),
                _c("modules", "string", optional=True),
                _c("renewal_at", "timestamp", optional=True),
            ),
            key=("account_id", "start_at"),
            observed=("start_at",),
        ),
        TableSpec(
            "users",
            (
                _c("account_id", "string"),
                _c("user_id", "string"),
                _c("role", "string"),
                _c("is_champion", "bool", optional=True),
                _c("is_executive", "bool", optional=True),
                _c("created_at", "timestamp"),
                _c("deactivated_at", "timestamp", nullable=True),
            ),
            key=("user_id",),
            observed=("created_at", "deactivated_at"),
        ),
        TableSpec(
            "events",
            (
                _c("account_id", "string"),
                _c("user_id", "string"),
                _c("occurred_at", "timestamp"),
                _c("event", "string"),
                _c("quantity", "float", optional=True),
            ),
            observed=("occurred_at",),
        ),
        TableSpec(
            "integrations",
            (
                _c("account_id", "string"),
                _c("integration", "string"),
                _c("connected_at", "timestamp"),
                _c("disconnected_at", "timestamp", nullable=True),
            ),
            required=False,
            observed=("connected_at", "disconnected_at"),
        ),
        TableSpec(
            "tickets",
            (
                _c("account_id", "string"),
                _c("ticket_id", "string"),
                _c("created_at", "timestamp"),
                _c("priority", "string", optional=True),
                _c("text", "string", optional=True),
                _c("sentiment", "float", optional=True),
                _c("resolved_at", "timestamp", optional=True),
            ),
            required=False,
            key=("ticket_id",),
            observed=("created_at", "resolved_at"),
        ),
        TableSpec(
            "nps_responses",
            (
                _c("account_id", "string"),
                _c("user_id", "string", optional=True),
                _c("responded_at", "timestamp"),
                _c("score", "int"),
                _c("comment", "string", optional=True),
            ),
            required=False,
            observed=("responded_at",),
        ),
        TableSpec(
            "invoices",
            (
                _c("account_id", "string"),
                _c("invoice_id", "string"),
                _c("due_at", "timestamp"),
                _c("amount", "float"),
                _c("paid_at", "timestamp", nullable=True),
                _c("status", "string"),
            ),
            required=False,
            key=("invoice_id",),
            observed=("paid_at",),
        ),
        # CSM plays run on accounts (bulk load of what POST /v1/interventions records).
        # Read only by the intervention report: no feature is built from it, so the models
        # never learn from their own plays.
        TableSpec(
            "interventions",
            (
                _c("account_id", "string"),
                _c("play", "string"),
                _c("started_at", "timestamp"),
                _c("owner", "string", optional=True),
                _c("notes", "string", optional=True),
            ),
            required=False,
            key=("account_id", "play", "started_at"),
            observed=("started_at",),
        ),
    )
}

INVOICE_STATUSES = ("paid", "open", "failed", "void")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
USER_ROLES = ("admin", "member")
