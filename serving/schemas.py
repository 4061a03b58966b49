"""Request and response models of the API, with the examples shown in the OpenAPI docs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    create_model,
    field_validator,
)

from features.registry import FEATURES, FeatureSpec

# Where one probability came from, and the score's overall source: "model" when both
# probabilities came from the models, "rules" when both came from the rules fallback,
# "mixed" when one did each (e.g. a company without expansions has no expansion model).
RoleSource = Literal["model", "rules"]
Source = Literal["model", "rules", "mixed"]
SOURCE_DESCRIPTION = (
    "'model' when both probabilities come from the models, 'rules' when both come from the "
    "rule-based fallback, 'mixed' when one does each (see churn_source and expansion_source)"
)
SortKey = Literal["churn_probability", "arr_at_risk", "expansion_probability", "health_score"]

_STRICT = ConfigDict(extra="forbid")
_EXAMPLE_AS_OF = "2026-09-01T00:00:00Z"


def _iso_utc(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


# Internally naive UTC; on the wire RFC 3339 with an explicit "Z", as JSON Schema demands.
UtcDatetime = Annotated[
    datetime,
    PlainSerializer(_iso_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


CATEGORY_NOTE = (
    "any text; a value the models were not trained on is scored as a missing value (the "
    "same as a snapshot row holding it) and probability_note names it"
)


def allowed_range(spec: FeatureSpec) -> str:
    """The registry range of a numeric feature as a 422 message and the docs write it."""
    lo, hi = spec.minimum, spec.maximum
    if lo is not None and hi is not None:
        return f"[{lo:g}, {hi:g}]"
    if lo is not None:
        return f">= {lo:g}"
    return f"<= {hi:g}" if hi is not None else "any finite number"


def _in_range(spec: FeatureSpec) -> Any:
    def check(value: float) -> float:
        lo, hi = spec.minimum, spec.maximum
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            where = allowed_range(spec)
            where = f"in {where}" if where.startswith("[") else where
            raise ValueError(f"{spec.name} must be {where}, got {value:g}")
        return value

    return check


def _feature_field(spec: FeatureSpec) -> tuple[Any, Any]:
    description = spec.description + (f" ({spec.unit})" if spec.unit else "")
    if spec.kind == "category":
        description += f"; {CATEGORY_NOTE}"
        return (str | None, Field(default=None, max_length=200, description=description))
    if spec.kind == "bool":
        return (bool | None, Field(default=None, description=description))
    bounds = {
        key: value
        for key, value in (("minimum", spec.minimum), ("maximum", spec.maximum))
        if value is not None
    }
    # The range is in the schema (clients and schemathesis see it) and a value outside it
    # is a 422 naming the field and the range.
    number = Annotated[
        float,
        AfterValidator(_in_range(spec)),
        WithJsonSchema({"type": "number", **bounds}),
    ]
    description += f"; allowed range: {allowed_range(spec)}"
    return (number | None, Field(default=None, allow_inf_nan=False, description=description))


# Generated from the feature registry: unknown names are a field-level 422, and a key
# that is absent (as opposed to null = unknown) means the caller did not compute it.
FeatureValues: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "FeatureValues",
    __config__=ConfigDict(extra="forbid"),
    **{spec.name: _feature_field(spec) for spec in FEATURES},
)


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


class AccountFeatures(BaseModel):
    """One account's features as computed by the calling tool."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acct-0042",
                    "as_of": _EXAMPLE_AS_OF,
                    "csm_owner": "dana",
                    "renewal_at": "2026-11-15T00:00:00Z",
                    "features": {"mau": 14, "usage_trend_30d": -0.45, "segment": "SMB"},
                }
            ]
        },
    )

    account_id: str = Field(min_length=1, max_length=200)
    as_of: datetime = Field(description="the moment the features describe (UTC)")
    csm_owner: str | None = Field(default=None, max_length=200)
    renewal_at: datetime | None = Field(default=None, description="end of the committed term (UTC)")
    features: FeatureValues = Field(  # type: ignore[valid-type]
        description="registry feature values; omit a feature you did not compute, null = unknown"
    )

    _utc = field_validator("as_of", "renewal_at")(_naive_utc)


class ScoreRequest(BaseModel):
    """Accounts to score (up to the configured batch size)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "accounts": [AccountFeatures.model_config["json_schema_extra"]["examples"][0]],  # type: ignore[index]
                    "drivers": True,
                }
            ]
        },
    )

    accounts: list[AccountFeatures] = Field(min_length=1)
    drivers: bool = Field(default=True, description="include the top drivers of each probability")


class Driver(BaseModel):
    feature: str
    value: float | str | None
    contribution: float = Field(description="SHAP contribution to the raw (log-odds) score")
    direction: Literal["raises", "lowers"]
    text: str


class FiredRule(BaseModel):
    name: str
    kind: Literal["risk", "expansion"]
    text: str
    evidence: dict[str, float | str | None]


class Play(BaseModel):
    intervention: str | None
    response_time: str | None
    expansion_play: str | None
    reason: str


class Renewal(BaseModel):
    renewal_at: UtcDatetime | None
    days_to_renewal: int | None = Field(
        description="whole days from as_of to renewal_at, rounded down; negative = overdue "
        "(the committed term ended that many days ago with no renewal recorded, the account "
        "still in the book); null for a month-to-month account (no committed term)"
    )
    arr_at_stake: float | None
    high_risk: bool = Field(
        description="health band in renewals.high_risk_bands or churn probability strictly "
        "above renewals.churn_probability_high (rules.yaml)"
    )
    alert: str | None = Field(description="90/60/30-day alert for a high-risk account, else null")
    month_to_month: bool
    csm_owner: str | None = Field(description="the owner the alert goes to; null when unowned")
    unowned: bool = Field(description="no owner: csm_owner missing, empty or only whitespace")


class ModelVersions(BaseModel):
    churn: str | None = Field(description="registered version serving churn, null in fallback")
    expansion: str | None


_SCORE_EXAMPLE: dict[str, Any] = {
    "account_id": "acct-0042",
    "as_of": _EXAMPLE_AS_OF,
    "source": "model",
    "churn_source": "model",
    "expansion_source": "model",
    "fallback_reason": None,
    "churn_probability": 0.31,
    "expansion_probability": 0.08,
    "probability_note": None,
    "health_score": 58.0,
    "health_band": "At risk",
    "health_categories": {"adoption": 61.0, "engagement": 40.5, "support": 72.0},
    "health_missing": ["nps_latest"],
    "health_detractors": ["usage_trend_30d", "champion_active_14d"],
    "health_change": -6.0,
    "health_alert": False,
    "pqa_score": 35.0,
    "pqa_band": "Warm",
    "drivers": [
        {
            "feature": "usage_trend_30d",
            "value": -0.45,
            "contribution": 0.62,
            "direction": "raises",
            "text": "relative change of actions: last 30 days vs the 30 before is -0.45, "
            "which raises the risk",
        }
    ],
    "expansion_drivers": [],
    "signals": [
        {
            "name": "usage_drop",
            "kind": "risk",
            "text": "usage fell 45% over 14 days",
            "evidence": {"usage_trend_14d": -0.45, "usage_trend_14d_limit": "< -0.4"},
        }
    ],
    "triggers": [],
    "play": {
        "intervention": "early_warning",
        "response_time": "48h",
        "expansion_play": None,
        "reason": "health 58 (At risk) and falling",
    },
    "renewal": {
        "renewal_at": "2026-11-15T00:00:00Z",
        "days_to_renewal": 75,
        "arr_at_stake": 12000.0,
        "high_risk": True,
        "alert": "90 days",
        "month_to_month": False,
        "csm_owner": "dana",
        "unowned": False,
    },
    "model_versions": {"churn": "3", "expansion": "2"},
}


class Score(BaseModel):
    """Everything a CS tool needs about one account at one as_of."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SCORE_EXAMPLE]})

    account_id: str
    as_of: UtcDatetime
    source: Source = Field(description=SOURCE_DESCRIPTION)
    churn_source: RoleSource = Field(description="where churn_probability came from")
    expansion_source: RoleSource = Field(description="where expansion_probability came from")
    fallback_reason: str | None = Field(
        description="when a source is not 'model': which model did not answer and why, each "
        "message once; null when both probabilities come from the models"
    )
    churn_probability: float | None
    expansion_probability: float | None
    probability_note: str | None = Field(description="why a probability is null, if one is")
    health_score: float | None
    health_band: str | None
    health_categories: dict[str, float | None]
    health_missing: list[str]
    health_detractors: list[str]
    health_change: float | None
    health_alert: bool
    pqa_score: float | None
    pqa_band: str | None
    drivers: list[Driver] = Field(
        description="top drivers of the churn probability a CSM can act on: one per signal "
        "(the windows of one signal summed), each with its value, the account's own value "
        "about 90 days earlier and its percentile among its segment's scored accounts"
    )
    context: list[Driver] = Field(
        default_factory=list,
        description="contract context of the churn probability (term and days to renewal, "
        "plan, ARR, segment, tenure): reported, not something to act on",
    )
    expansion_drivers: list[Driver]
    expansion_context: list[Driver] = Field(default_factory=list)
    signals: list[FiredRule]
    triggers: list[FiredRule]
    play: Play
    renewal: Renewal | None
    model_versions: ModelVersions


class ScoreResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"scores": [_SCORE_EXAMPLE]}]})

    scores: list[Score]


class WorklistItem(BaseModel):
    account_id: str
    csm_owner: str | None
    segment: str | None
    arr: float | None
    churn_probability: float | None
    expansion_probability: float | None
    arr_at_risk: float | None = Field(description="ARR x churn probability")
    health_score: float | None
    health_band: str | None
    pqa_score: float | None
    pqa_band: str | None
    signals: list[str]
    triggers: list[str]
    source: Source = Field(description=SOURCE_DESCRIPTION)
    churn_source: RoleSource
    expansion_source: RoleSource


class WorklistPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "account_id": "acct-0042",
                            "csm_owner": "dana",
                            "segment": "SMB",
                            "arr": 12000.0,
                            "churn_probability": 0.31,
                            "expansion_probability": 0.08,
                            "arr_at_risk": 3720.0,
                            "health_score": 58.0,
                            "health_band": "At risk",
                            "pqa_score": 35.0,
                            "pqa_band": "Warm",
                            "signals": ["usage_drop"],
                            "triggers": [],
                            "source": "model",
                            "churn_source": "model",
                            "expansion_source": "model",
                        }
                    ],
                    "total": 1,
                    "page": 1,
                    "page_size": 50,
                    "sort": "churn_probability",
                    "as_of": _EXAMPLE_AS_OF,
                }
            ]
        }
    )

    items: list[WorklistItem]
    total: int
    page: int
    page_size: int
    sort: SortKey
    as_of: UtcDatetime | None


RenewalKind = Literal["committed", "monthly"]


class RenewalItem(BaseModel):
    account_id: str
    csm_owner: str | None = Field(description="null when unowned")
    unowned: bool = Field(description="no owner: csm_owner missing, empty or only whitespace")
    renewal_at: UtcDatetime | None
    days_to_renewal: int | None = Field(
        description="whole days to renewal_at, rounded down; negative = overdue (listed "
        "first in every window); null when month-to-month"
    )
    month_to_month: bool
    arr_at_stake: float | None
    health_score: float | None
    health_band: str | None
    churn_probability: float | None
    high_risk: bool = Field(
        description="health band in renewals.high_risk_bands or churn probability strictly "
        "above renewals.churn_probability_high (rules.yaml)"
    )
    alert: str | None


class RenewalsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": _EXAMPLE_AS_OF,
                    "within_days": 90,
                    "items": [
                        {
                            "account_id": "acct-0042",
                            "csm_owner": None,
                            "unowned": True,
                            "renewal_at": "2026-11-15T00:00:00Z",
                            "days_to_renewal": 75,
                            "month_to_month": False,
                            "arr_at_stake": 12000.0,
                            "health_score": 58.0,
                            "health_band": "At risk",
                            "churn_probability": 0.31,
                            "high_risk": True,
                            "alert": "90 days",
                        }
                    ],
                }
            ]
        }
    )

    as_of: UtcDatetime | None
    within_days: int
    kind: RenewalKind = Field(
        default="committed",
        description="`committed`: terms renewing within within_days; `monthly`: "
        "month-to-month accounts at high risk, highest churn probability first",
    )
    items: list[RenewalItem]


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class DriftFeature(BaseModel):
    feature: str
    psi: float = Field(description="population stability index vs the model's training rows")
    status: Literal["stable", "moderate", "significant", "untrained"]


class DriftSummary(BaseModel):
    """PSI of the served snapshots against one model's training data (computed at load)."""

    as_of: str | None = Field(description="snapshot date checked")
    rows: int
    features: int
    significant: int = Field(description="features with PSI at or above the high threshold")
    moderate: int = Field(description="features between the low and the high threshold")
    max_psi: float
    significant_features: list[str]
    moderate_features: list[str]
    untrained_features: list[str] = Field(
        default_factory=list,
        description="features every training row lacked: the model does not use them, so "
        "their values arriving now are not counted as drift",
    )
    worst: list[DriftFeature] = Field(description="the five most shifted features")


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "fallback",
                    "fallback_reason": "model not registered: nrr-churn@champion",
                    "model_versions": {"churn": None, "expansion": None},
                    "snapshots_as_of": _EXAMPLE_AS_OF,
                    "accounts": 1500,
                    "loaded_at": "2026-09-02T08:00:00Z",
                }
            ]
        }
    )

    status: Literal["ready", "degraded", "fallback", "loading", "unavailable"] = Field(
        description="HTTP 200: `ready` (models and snapshots served), `degraded` (models "
        "served, but no account precomputed: see degraded_reason), `fallback` (the rules "
        "answer instead of a model: see fallback_reason). HTTP 503: `loading` (the first "
        "load is still running, at most NRR_REGISTRY_TIMEOUT_SECONDS for the registry), "
        "`unavailable` (nothing could be loaded: see fallback_reason)"
    )
    fallback_reason: str | None
    model_versions: ModelVersions
    snapshots_as_of: UtcDatetime | None
    accounts: int
    loaded_at: UtcDatetime | None
    drift: dict[str, DriftSummary | None] | None = Field(
        default=None,
        description="per model (churn, expansion): PSI summary; null: see drift_reason",
    )
    drift_reason: str | None = Field(
        default=None, description="why drift is missing for a model (e.g. no reference stored)"
    )
    degraded_reason: str | None = Field(
        default=None,
        description="why no account is served from snapshots (none configured, or an empty "
        "file); set whatever the status",
    )
    worker_pid: int | None = Field(
        default=None,
        description="process id of the worker that answered: with `nrr serve --workers N` "
        "each worker answers for itself",
    )
    generation: int | None = Field(
        default=None,
        description="reload generation this worker serves (`nrr serve`: every worker "
        "converges on the newest after a reload or promotion); null outside `nrr serve`",
    )


class ReloadResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "failed",
                    "reason": "golden check failed: predictions outside [0, 1]",
                    "serving": Readiness.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                }
            ]
        }
    )

    status: Literal["reloaded", "failed"]
    reason: str | None = Field(description="why the reload failed; the old state keeps serving")
    serving: Readiness
    api_keys: int | None = Field(
        default=None,
        description="API keys in force after re-reading the keys file (null: auth disabled)",
    )
    keys_error: str | None = Field(
        default=None,
        description="why the keys file could not be read; the keys in force before stay",
    )


class ErrorDetail(BaseModel):
    field: str
    message: str


class ApiError(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "not_found",
                    "message": "unknown account 'acct-9999'",
                    "details": [],
                }
            ]
        }
    )

    error: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
