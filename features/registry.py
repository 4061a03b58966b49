"""Every snapshot feature: name, family, what it means, and which way is healthy.

The API's driver texts, the docs' feature table and the health score's monotonicity
test are generated from this one list. `direction` is +1 when a higher value is
healthier, -1 when a lower value is healthier, 0 when neither (context or size).
`needs` names the tables (and `table.column`) without which the feature is absent.
`churn_monotone` / `expansion_monotone` (MONOTONE below) are the ways the domain fixes
for the model's probability: +1 a higher value never lowers it, -1 never raises it, 0 free;
with `booster.monotone` on, LightGBM is constrained to them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Family = Literal[
    "usage", "adoption", "people", "integrations", "support", "voice", "commercial", "gates"
]
Kind = Literal["numeric", "bool", "category"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    family: Family
    description: str
    direction: Literal[-1, 0, 1]
    kind: Kind = "numeric"
    needs: tuple[str, ...] = ()
    unit: str = ""
    # Allowed range of a numeric feature (None = unbounded on that side), from how
    # features/builders computes it; POST /v1/score answers 422 outside it.
    minimum: float | None = None
    maximum: float | None = None
    # Direction the domain fixes for each model's probability (see MONOTONE).
    churn_monotone: Literal[-1, 0, 1] = 0
    expansion_monotone: Literal[-1, 0, 1] = 0


def _f(
    name: str,
    family: Family,
    direction: Literal[-1, 0, 1],
    description: str,
    *,
    kind: Kind = "numeric",
    needs: tuple[str, ...] = (),
    unit: str = "",
) -> FeatureSpec:
    return FeatureSpec(name, family, description, direction, kind, needs, unit)


FEATURES: tuple[FeatureSpec, ...] = (
    # usage ------------------------------------------------------------------------------
    _f("wau", "usage", 1, "distinct active users in the last 7 days", unit="users"),
    _f("mau", "usage", 1, "distinct active users in the last 30 days", unit="users"),
    _f("active_users_90d", "usage", 1, "distinct active users in the last 90 days", unit="users"),
    _f("stickiness", "usage", 1, "WAU / MAU: how much of the monthly base comes back weekly"),
    _f("active_days_30d", "usage", 1, "days with any activity in the last 30 days", unit="days"),
    _f("events_30d", "usage", 1, "tracked actions in the last 30 days", unit="events"),
    _f("events_per_active_user_30d", "usage", 1, "actions per active user, last 30 days"),
    _f(
        "usage_trend_30d",
        "usage",
        1,
        "relative change of actions: last 30 days vs the 30 before (0 = flat, -0.5 = halved)",
    ),
    _f("usage_trend_14d", "usage", 1, "relative change of actions: last 14 days vs the 14 before"),
    _f(
        "active_users_trend_30d",
        "usage",
        1,
        "relative change of MAU: last 30 days vs the 30 days before",
    ),
    _f(
        "days_since_last_activity", "usage", -1, "days since the account's last action", unit="days"
    ),
    # adoption ---------------------------------------------------------------------------
    _f(
        "core_breadth_30d",
        "adoption",
        1,
        "share of the core features used in the last 30 days (0-1)",
    ),
    _f(
        "core_breadth_change_30d",
        "adoption",
        1,
        "change of core-feature breadth vs the 30 days before (share points)",
    ),
    _f(
        "advanced_depth_30d",
        "adoption",
        1,
        "share of the advanced features used in the last 30 days (0-1)",
    ),
    _f(
        "advanced_share_30d",
        "adoption",
        1,
        "share of actions that used advanced features, last 30 days",
    ),
    _f(
        "features_newly_adopted_30d",
        "adoption",
        1,
        "core or advanced features used for the first time in the last 30 days",
    ),
    _f("seat_utilisation", "adoption", 1, "MAU / licensed seats", needs=("subscriptions.seats",)),
    _f(
        "licence_utilisation",
        "adoption",
        1,
        "users holding a licence at as_of / licensed seats (1 = every seat assigned)",
        needs=("subscriptions.seats",),
    ),
    _f(
        "usage_limit_ratio_30d",
        "adoption",
        1,
        "metered quantity in the last 30 days / monthly plan limit",
        needs=("subscriptions.usage_limit",),
    ),
    _f(
        "usage_limit_ratio_trend",
        "adoption",
        1,
        "change of the usage-limit ratio vs the 30 days before",
        needs=("subscriptions.usage_limit",),
    ),
    _f(
        "metered_usage_yoy",
        "adoption",
        1,
        "metered quantity, last 30 days vs the same 30 days a year earlier (0 = flat)",
    ),
    _f("workspaces", "adoption", 1, "workspaces created so far"),
    # people -----------------------------------------------------------------------------
    _f(
        "users_active_licences",
        "people",
        1,
        "provisioned users not deactivated at as_of",
        unit="users",
    ),
    _f("admins_active_30d", "people", 1, "admins with any action in the last 30 days"),
    _f("admin_actions_30d", "people", 1, "admin actions in the last 30 days"),
    _f("invites_30d", "people", 1, "teammate invitations in the last 30 days"),
    _f("invites_90d", "people", 1, "teammate invitations in the last 90 days"),
    _f(
        "invite_rate_90d",
        "people",
        1,
        "teammate invitations per tracked action, last 90 days",
    ),
    _f("new_users_60d", "people", 1, "users provisioned in the last 60 days"),
    _f("users_deactivated_90d", "people", -1, "users deactivated in the last 90 days"),
    _f(
        "licence_growth_365d",
        "people",
        1,
        "relative change of users holding a licence vs a year earlier (0 = flat)",
    ),
    _f(
        "has_champion",
        "people",
        1,
        "a named champion is provisioned and not deactivated",
        kind="bool",
        needs=("users.is_champion",),
    ),
    _f(
        "champion_active_14d",
        "people",
        1,
        "a champion acted in the last 14 days",
        kind="bool",
        needs=("users.is_champion",),
    ),
    _f(
        "champion_departed_90d",
        "people",
        -1,
        "a champion was deactivated in the last 90 days",
        kind="bool",
        needs=("users.is_champion",),
    ),
    _f(
        "executive_active_30d",
        "people",
        1,
        "an executive sponsor acted in the last 30 days",
        kind="bool",
        needs=("users.is_executive",),
    ),
    _f(
        "active_stakeholders_90d",
        "people",
        1,
        "admins, champions and executives active in the last 90 days (multi-threading)",
    ),
    # integrations -----------------------------------------------------------------------
    _f(
        "integrations_connected",
        "integrations",
        1,
        "integrations connected at as_of",
        needs=("integrations",),
    ),
    _f(
        "integrations_change_90d",
        "integrations",
        1,
        "net change of connected integrations over the last 90 days",
        needs=("integrations",),
    ),
    # support ----------------------------------------------------------------------------
    _f(
        "tickets_30d",
        "support",
        -1,
        "support tickets opened in the last 30 days",
        needs=("tickets",),
    ),
    _f(
        "tickets_90d",
        "support",
        -1,
        "support tickets opened in the last 90 days",
        needs=("tickets",),
    ),
    _f(
        "ticket_rate_ratio",
        "support",
        -1,
        "tickets in the last 30 days / the account's own monthly normal over the prior 180 days",
        needs=("tickets",),
    ),
    _f(
        "urgent_share_90d",
        "support",
        -1,
        "share of last-90-day tickets that were high/urgent",
        needs=("tickets.priority",),
    ),
    _f(
        "sentiment_90d",
        "support",
        1,
        "mean ticket sentiment, last 90 days (-1..+1)",
        needs=("tickets",),
    ),
    _f(
        "sentiment_trend",
        "support",
        1,
        "mean sentiment of the last 30 days minus that of the 60 days before",
        needs=("tickets",),
    ),
    _f(
        "sentiment_lifetime",
        "support",
        1,
        "mean sentiment of every ticket before as_of (-1..+1)",
        needs=("tickets",),
    ),
    _f(
        "resolution_hours_90d",
        "support",
        -1,
        "median hours to resolve tickets opened in the last 90 days (resolved before as_of)",
        needs=("tickets.resolved_at",),
    ),
    _f(
        "open_tickets",
        "support",
        -1,
        "tickets opened and not resolved before as_of",
        needs=("tickets.resolved_at",),
    ),
    # voice ------------------------------------------------------------------------------
    _f(
        "nps_latest",
        "voice",
        1,
        "latest NPS answer from the account (0-10)",
        needs=("nps_responses",),
    ),
    _f(
        "nps_change",
        "voice",
        1,
        "latest NPS answer minus the one before (points)",
        needs=("nps_responses",),
    ),
    _f(
        "nps_detractor",
        "voice",
        -1,
        "latest NPS answer below 7",
        kind="bool",
        needs=("nps_responses",),
    ),
    _f("days_since_nps", "voice", 0, "days since the latest NPS answer", needs=("nps_responses",)),
    _f(
        "nps_lifetime",
        "voice",
        1,
        "mean of every NPS answer from the account before as_of (0-10)",
        needs=("nps_responses",),
    ),
    # commercial -------------------------------------------------------------------------
    _f("arr", "commercial", 0, "annual recurring revenue at as_of", unit="currency"),
    _f("plan", "commercial", 0, "plan at as_of", kind="category"),
    _f("seats", "commercial", 0, "licensed seats at as_of", needs=("subscriptions.seats",)),
    _f(
        "modules_count",
        "commercial",
        1,
        "add-on modules at as_of",
        needs=("subscriptions.modules",),
    ),
    _f("tenure_days", "commercial", 1, "days since the account became a customer"),
    _f(
        "days_to_renewal",
        "commercial",
        0,
        "days until the committed (annual or multi-year) term ends",
        needs=("subscriptions.renewal_at",),
    ),
    _f(
        "billing_term",
        "commercial",
        0,
        "monthly (no committed term), annual or multi_year",
        kind="category",
        needs=("subscriptions.renewal_at",),
    ),
    _f("arr_change_90d", "commercial", 1, "relative ARR change over the last 90 days"),
    _f("arr_change_180d", "commercial", 1, "relative ARR change over the last 180 days"),
    _f("expansions_365d", "commercial", 1, "ARR increases in the last 365 days"),
    _f("contractions_365d", "commercial", -1, "ARR decreases in the last 365 days"),
    _f(
        "invoices_failed_90d",
        "commercial",
        -1,
        "invoices whose collection failed, last 90 days",
        needs=("invoices",),
    ),
    _f(
        "invoices_overdue",
        "commercial",
        -1,
        "invoices due before as_of and unpaid at as_of",
        needs=("invoices",),
    ),
    _f(
        "days_overdue_max",
        "commercial",
        -1,
        "days the oldest unpaid invoice is past due at as_of",
        needs=("invoices",),
    ),
    _f("segment", "commercial", 0, "customer segment", kind="category"),
    _f("industry", "commercial", 0, "industry", kind="category", needs=("accounts.industry",)),
    _f(
        "icp_fit",
        "commercial",
        0,
        "ideal-customer-profile fit",
        kind="category",
        needs=("accounts.icp_fit",),
    ),
    _f(
        "has_owner",
        "commercial",
        1,
        "a named CSM owns the account",
        kind="bool",
        needs=("accounts.csm_owner",),
    ),
    # gates ------------------------------------------------------------------------------
    _f("gate_hits_7d", "gates", 0, "feature-gate hits (tried a feature above the plan), 7 days"),
    _f("gate_hits_30d", "gates", 0, "feature-gate hits, last 30 days"),
)

# Range of every numeric feature, derived from its definition in features/builders:
# counts, days, hours and money >= 0; shares of a whole (a part over its total) in [0, 1];
# relative changes (now - before) / before of non-negative quantities >= -1; differences
# of shares within [-1, 1]. Ratios over a contract quantity are not capped at 1: MAU or
# licensed users can exceed the seats bought (seat_utilisation, licence_utilisation), and
# metered usage can exceed the plan limit (usage_limit_ratio_30d). Signed differences of
# unbounded quantities (usage_limit_ratio_trend, integrations_change_90d) and
# days_to_renewal (negative once the term has ended) have no bound.
_COUNT = (0.0, None)
_SHARE = (0.0, 1.0)
_REL_CHANGE = (-1.0, None)
_FREE = (None, None)
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "wau": _COUNT,
    "mau": _COUNT,
    "active_users_90d": _COUNT,
    "stickiness": _SHARE,  # WAU <= MAU: the 7-day users are among the 30-day ones
    "active_days_30d": (0.0, 31.0),  # UTC days touched by a 30-day window
    "events_30d": _COUNT,
    "events_per_active_user_30d": _COUNT,
    "usage_trend_30d": _REL_CHANGE,
    "usage_trend_14d": _REL_CHANGE,
    "active_users_trend_30d": _REL_CHANGE,
    "days_since_last_activity": _COUNT,
    "core_breadth_30d": _SHARE,
    "core_breadth_change_30d": (-1.0, 1.0),
    "advanced_depth_30d": _SHARE,
    "advanced_share_30d": _SHARE,
    "features_newly_adopted_30d": _COUNT,
    "seat_utilisation": _COUNT,  # MAU / seats: over 1 when more users are active than bought
    "licence_utilisation": _COUNT,  # over 1 when more users hold a licence than seats bought
    "usage_limit_ratio_30d": _COUNT,  # over 1 past the plan limit
    "usage_limit_ratio_trend": _FREE,
    "metered_usage_yoy": _REL_CHANGE,
    "workspaces": _COUNT,
    "users_active_licences": _COUNT,
    "admins_active_30d": _COUNT,
    "admin_actions_30d": _COUNT,
    "invites_30d": _COUNT,
    "invites_90d": _COUNT,
    "invite_rate_90d": _SHARE,  # invitation rows among all event rows
    "new_users_60d": _COUNT,
    "users_deactivated_90d": _COUNT,
    "licence_growth_365d": _REL_CHANGE,
    "active_stakeholders_90d": _COUNT,
    "integrations_connected": _COUNT,
    "integrations_change_90d": _FREE,
    "tickets_30d": _COUNT,
    "tickets_90d": _COUNT,
    "ticket_rate_ratio": _COUNT,
    "urgent_share_90d": _SHARE,
    "sentiment_90d": (-1.0, 1.0),
    "sentiment_trend": (-2.0, 2.0),
    "sentiment_lifetime": (-1.0, 1.0),
    "resolution_hours_90d": _COUNT,
    "open_tickets": _COUNT,
    "nps_latest": (0.0, 10.0),
    "nps_change": (-10.0, 10.0),
    "days_since_nps": _COUNT,
    "nps_lifetime": (0.0, 10.0),
    "arr": _COUNT,
    "seats": _COUNT,
    "modules_count": _COUNT,
    "tenure_days": _COUNT,
    "days_to_renewal": _FREE,
    "arr_change_90d": _REL_CHANGE,
    "arr_change_180d": _REL_CHANGE,
    "expansions_365d": _COUNT,
    "contractions_365d": _COUNT,
    "invoices_failed_90d": _COUNT,
    "invoices_overdue": _COUNT,
    "days_overdue_max": _COUNT,
    "gate_hits_7d": _COUNT,
    "gate_hits_30d": _COUNT,
}
# The direction the domain fixes for each model, (churn, expansion): +1 a higher value never
# lowers the probability, -1 never raises it; a feature not listed is free (0) for both.
# Churn: more active users, admins, stakeholders, integrations, breadth and depth,
# stickiness, active days, actions, a champion in place and acting never raise the risk;
# silence (days since the last action), failed or overdue invoices, a departed champion and
# urgent tickets never lower it, and neither does a LOWER or FALLING sentiment (so the
# sentiment features are -1: the rules' `sentiment_negative` is below 0 and falling;
# the lifetime mean is the same signal read over a longer window), and neither does a
# lower NPS answer (a detractor is never the safer account, all else equal).
# Free where the sign is not the domain's: tenure, ARR, seats, usage and ARR trends, tickets
# (engaged customers file them), renewal days, NPS timing. Expansion: adoption,
# utilisation and licence growth never lower it; everything else is free.
MONOTONE: dict[str, tuple[Literal[-1, 0, 1], Literal[-1, 0, 1]]] = {
    "wau": (-1, 0),
    "mau": (-1, 0),
    "active_users_90d": (-1, 0),
    "stickiness": (-1, 0),
    "active_days_30d": (-1, 0),
    "events_30d": (-1, 0),
    "days_since_last_activity": (1, 0),
    "core_breadth_30d": (-1, 1),
    "advanced_depth_30d": (-1, 1),
    "seat_utilisation": (0, 1),
    "licence_utilisation": (0, 1),
    "usage_limit_ratio_30d": (0, 1),
    "licence_growth_365d": (0, 1),
    "admins_active_30d": (-1, 0),
    "admin_actions_30d": (-1, 0),
    "has_champion": (-1, 0),
    "champion_active_14d": (-1, 0),
    "champion_departed_90d": (1, 0),
    "active_stakeholders_90d": (-1, 0),
    "integrations_connected": (-1, 0),
    "urgent_share_90d": (1, 0),
    "sentiment_90d": (-1, 0),
    "sentiment_trend": (-1, 0),
    "sentiment_lifetime": (-1, 0),
    "nps_latest": (-1, 0),
    "nps_lifetime": (-1, 0),
    "invoices_failed_90d": (1, 0),
    "invoices_overdue": (1, 0),
    "days_overdue_max": (1, 0),
}
FEATURES = tuple(
    replace(
        f,
        minimum=BOUNDS.get(f.name, (None, None))[0],
        maximum=BOUNDS.get(f.name, (None, None))[1],
        churn_monotone=MONOTONE.get(f.name, (0, 0))[0],
        expansion_monotone=MONOTONE.get(f.name, (0, 0))[1],
    )
    for f in FEATURES
)

BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in FEATURES}
FEATURE_NAMES: tuple[str, ...] = tuple(BY_NAME)
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "category")

# Columns of a snapshot frame that are not features.
KEY_COLUMNS = ("account_id", "as_of")
# Facts at as_of that tools need for routing and display but models never see.
INFO_COLUMNS = ("csm_owner", "renewal_at")
LABEL_COLUMNS = (
    "labelled",
    "churned",
    "churn_at",
    "expanded",
    "expansion_arr",
    "contracted",
    "contraction_arr",
)


def monotone_direction(name: str, target: Literal["churn", "expansion"]) -> Literal[-1, 0, 1]:
    """The direction the domain fixes for `target`'s probability in feature `name` (0 = free)."""
    feature = spec(name)
    return feature.churn_monotone if target == "churn" else feature.expansion_monotone


def spec(name: str) -> FeatureSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURE_NAMES)}") from None


# How drivers present each feature to a CSM ---------------------------------------------
Fmt = Literal[
    "count",
    "share",
    "change",
    "points",
    "signed",
    "ratio",
    "days",
    "hours",
    "money",
    "bool",
    "category",
    "number",
]


@dataclass(frozen=True)
class Display:
    """A feature as a driver text shows it.

    `label`: a short name a CSM reads; `fmt`: how its value is written (share -> %, change
    -> signed %, points -> signed percentage points, days, hours, money -> $, bool -> the
    `yes`/`no` sentence); `noun`: what a count counts; `group`: features that are windows
    or views of one signal share a group, so one account's top drivers are different
    things; `context`: contract facts (term, renewal, plan, size) reported beside the
    drivers, not as something to act on.
    """

    label: str
    fmt: Fmt
    group: str
    noun: str = ""
    yes: str = ""
    no: str = ""
    context: bool = False


def _d(
    label: str,
    fmt: Fmt,
    group: str,
    noun: str = "",
    *,
    yes: str = "",
    no: str = "",
    context: bool = False,
) -> Display:
    return Display(label, fmt, group, noun, yes, no, context)


DISPLAY: dict[str, Display] = {
    "wau": _d("Weekly active users", "count", "active_users", "users"),
    "mau": _d("Monthly active users", "count", "active_users", "users"),
    "active_users_90d": _d("Active users over 90 days", "count", "active_users", "users"),
    "active_users_trend_30d": _d(
        "Monthly active users vs the 30 days before", "change", "active_users"
    ),
    "stickiness": _d("Weekly share of monthly active users", "share", "stickiness"),
    "active_days_30d": _d("Active days in the last 30", "days", "active_days"),
    "events_30d": _d("Actions in the last 30 days", "count", "actions", "actions"),
    "events_per_active_user_30d": _d(
        "Actions per active user over 30 days", "number", "actions_per_user"
    ),
    "usage_trend_30d": _d("Usage, last 30 days vs the 30 before", "change", "usage_trend"),
    "usage_trend_14d": _d("Usage, last 14 days vs the 14 before", "change", "usage_trend"),
    "days_since_last_activity": _d("Days since the last action", "days", "last_activity"),
    "core_breadth_30d": _d("Core features used in the last 30 days", "share", "core_breadth"),
    "core_breadth_change_30d": _d(
        "Core features used vs the 30 days before", "points", "core_breadth"
    ),
    "advanced_depth_30d": _d("Advanced features used in the last 30 days", "share", "advanced"),
    "advanced_share_30d": _d("Share of actions on advanced features", "share", "advanced"),
    "features_newly_adopted_30d": _d(
        "Features adopted for the first time in 30 days", "count", "new_features", "features"
    ),
    "seat_utilisation": _d("Licensed seats in monthly use", "share", "seat_use"),
    "licence_utilisation": _d("Licensed seats assigned to users", "share", "seat_assigned"),
    "usage_limit_ratio_30d": _d("Metered usage, share of the plan limit", "share", "usage_limit"),
    "usage_limit_ratio_trend": _d(
        "Metered usage vs the plan limit, change over 30 days", "points", "usage_limit"
    ),
    "metered_usage_yoy": _d("Metered usage vs a year earlier", "change", "metered_yoy"),
    "workspaces": _d("Workspaces created", "count", "workspaces", "workspaces"),
    "users_active_licences": _d("Users holding a licence", "count", "licences", "users"),
    "licence_growth_365d": _d("Users holding a licence vs a year earlier", "change", "licences"),
    "admins_active_30d": _d("Admins active in the last 30 days", "count", "admins", "admins"),
    "admin_actions_30d": _d("Admin actions in the last 30 days", "count", "admins", "actions"),
    "invites_30d": _d("Teammate invitations in 30 days", "count", "invites", "invitations"),
    "invites_90d": _d("Teammate invitations in 90 days", "count", "invites", "invitations"),
    "invite_rate_90d": _d("Invitations per action over 90 days", "share", "invites"),
    "new_users_60d": _d("New users in the last 60 days", "count", "new_users", "users"),
    "users_deactivated_90d": _d(
        "Users deactivated in the last 90 days", "count", "deactivations", "users"
    ),
    "has_champion": _d(
        "Champion", "bool", "champion", yes="A champion is in place", no="No champion in place"
    ),
    "champion_active_14d": _d(
        "Champion activity",
        "bool",
        "champion",
        yes="A champion acted in the last 14 days",
        no="No champion activity in the last 14 days",
    ),
    "champion_departed_90d": _d(
        "Champion departure",
        "bool",
        "champion",
        yes="A champion left in the last 90 days",
        no="No champion left in the last 90 days",
    ),
    "executive_active_30d": _d(
        "Executive sponsor",
        "bool",
        "executive",
        yes="The executive sponsor acted in the last 30 days",
        no="No executive sponsor activity in the last 30 days",
    ),
    "active_stakeholders_90d": _d(
        "Admins, champions and executives active in 90 days", "count", "stakeholders", "people"
    ),
    "integrations_connected": _d("Integrations connected", "count", "integrations", "integrations"),
    "integrations_change_90d": _d(
        "Integrations connected, net change over 90 days", "signed", "integrations"
    ),
    "tickets_30d": _d("Support tickets in the last 30 days", "count", "tickets", "tickets"),
    "tickets_90d": _d("Support tickets in the last 90 days", "count", "tickets", "tickets"),
    "ticket_rate_ratio": _d(
        "Support tickets vs the account's usual monthly rate", "ratio", "tickets"
    ),
    "urgent_share_90d": _d("Urgent share of tickets in 90 days", "share", "urgent_tickets"),
    "sentiment_90d": _d("Ticket sentiment over 90 days (-1 to +1)", "signed", "sentiment"),
    "sentiment_trend": _d("Ticket sentiment, last 30 days vs the 60 before", "signed", "sentiment"),
    "sentiment_lifetime": _d(
        "Ticket sentiment over the account's whole history (-1 to +1)", "signed", "sentiment"
    ),
    "resolution_hours_90d": _d("Median time to resolve a ticket", "hours", "resolution"),
    "open_tickets": _d("Open support tickets", "count", "open_tickets", "tickets"),
    "nps_latest": _d("Latest NPS answer (0-10)", "number", "nps"),
    "nps_change": _d("NPS change vs the previous answer", "signed", "nps"),
    "nps_detractor": _d(
        "NPS detractor",
        "bool",
        "nps",
        yes="The latest NPS answer is a detractor (below 7)",
        no="The latest NPS answer is not a detractor",
    ),
    "days_since_nps": _d("Days since the latest NPS answer", "days", "nps"),
    "nps_lifetime": _d("Average of every NPS answer (0-10)", "number", "nps"),
    "modules_count": _d("Add-on modules", "count", "modules", "modules"),
    "arr_change_90d": _d("ARR change over 90 days", "change", "arr_change"),
    "arr_change_180d": _d("ARR change over 180 days", "change", "arr_change"),
    "expansions_365d": _d("ARR increases in the last year", "count", "expansions", "increases"),
    "contractions_365d": _d("ARR decreases in the last year", "count", "contractions", "decreases"),
    "invoices_failed_90d": _d(
        "Failed payments in the last 90 days", "count", "payments", "invoices"
    ),
    "invoices_overdue": _d("Overdue invoices", "count", "payments", "invoices"),
    "days_overdue_max": _d("Oldest unpaid invoice, days past due", "days", "payments"),
    "has_owner": _d(
        "CSM owner", "bool", "owner", yes="A named CSM owns the account", no="No named CSM owner"
    ),
    "gate_hits_7d": _d("Feature-gate hits in 7 days", "count", "gates", "hits"),
    "gate_hits_30d": _d("Feature-gate hits in 30 days", "count", "gates", "hits"),
    # context: facts of the contract and the account, not something a CSM acts on
    "arr": _d("ARR", "money", "arr", context=True),
    "plan": _d("Plan", "category", "plan", context=True),
    "seats": _d("Licensed seats", "count", "seats", "seats", context=True),
    "tenure_days": _d("Customer for", "days", "tenure", context=True),
    "days_to_renewal": _d("Committed term ends in", "days", "term", context=True),
    "billing_term": _d("Billing term", "category", "term", context=True),
    "segment": _d("Segment", "category", "segment", context=True),
    "industry": _d("Industry", "category", "industry", context=True),
    "icp_fit": _d("Ideal-customer-profile fit", "category", "icp_fit", context=True),
}


def display(name: str) -> Display:
    """How a driver text presents the feature `name`."""
    return DISPLAY[name]
