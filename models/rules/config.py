"""Typed, validated settings of the rule-based layer (health, PQA, signals, plays, renewals).

Every number of the rule layer (docs/DOMAIN.md) lives in `experiments/rules.yaml`, which
ships inside the package; this module only gives it a schema with clear errors.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from experiments import DEFAULT_RULES
from features.registry import BY_NAME
from models.revenue.nrr import NrrBands, SegmentBenchmark

HEALTH_SCORE = "health_score"  # the one non-feature a rule condition may read


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_feature(name: str) -> str:
    if name not in BY_NAME:
        raise ValueError(f"unknown feature {name!r} (not in features/registry.py)")
    return name


def segment_key(value: str) -> str:
    """Case-, space- and punctuation-insensitive key of a segment name ("Mid-Market" -> "midmarket")."""
    return re.sub(r"[^0-9a-z]", "", value.lower())


class AbsoluteNorm(_Frozen):
    """Linear map: `bad` -> 0, `good` -> 1, clipped; for scale-free features."""

    kind: Literal["absolute"]
    bad: float
    good: float

    @model_validator(mode="after")
    def _distinct(self) -> AbsoluteNorm:
        if self.bad == self.good:
            raise ValueError(f"bad and good must differ, both are {self.bad}")
        return self


class PercentileNorm(_Frozen):
    """The value's percentile rank in the training population (anchors in the normaliser)."""

    kind: Literal["percentile"]
    higher_is_better: bool


Norm = AbsoluteNorm | PercentileNorm


class SignalSpec(_Frozen):
    weight: float = Field(ge=0)
    norm: Norm = Field(discriminator="kind")


class CategorySpec(_Frozen):
    weight: float = Field(ge=0)
    signals: dict[str, SignalSpec]

    @model_validator(mode="after")
    def _signals_known_and_oriented(self) -> CategorySpec:
        for name, sig in self.signals.items():
            direction = BY_NAME[_check_feature(name)].direction
            better_up = (
                sig.norm.good > sig.norm.bad
                if isinstance(sig.norm, AbsoluteNorm)
                else sig.norm.higher_is_better
            )
            if direction != 0 and better_up != (direction > 0):
                raise ValueError(
                    f"signal {name!r}: normalisation rewards the wrong direction "
                    f"(registry direction {direction:+d})"
                )
        if not self.signals or sum(s.weight for s in self.signals.values()) <= 0:
            raise ValueError("a category needs at least one signal with positive weight")
        return self


class SegmentVariant(_Frozen):
    """Weight overrides for one segment; names matched through `segment_key`."""

    aliases: list[str] = Field(min_length=1)
    category_weights: dict[str, float] = {}
    signal_weights: dict[str, dict[str, float]] = {}


class Band(_Frozen):
    name: str
    min: float = Field(ge=0, le=100)


def _check_bands(bands: list[Band], what: str) -> None:
    mins = [b.min for b in bands]
    if not bands or mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins):
        raise ValueError(f"{what} must be listed from the highest `min` down, without ties")
    if mins[-1] != 0:
        raise ValueError(f"the lowest {what} entry must have min 0 so every score has a band")


class AlertSpec(_Frozen):
    drop_points: float = Field(gt=0)
    within_days: int = Field(gt=0)


class HealthSpec(_Frozen):
    categories: dict[str, CategorySpec]
    segments: dict[str, SegmentVariant] = {}
    bands: list[Band]
    alert: AlertSpec
    percentile_anchors: int = Field(ge=3, le=1001)

    @model_validator(mode="after")
    def _consistent(self) -> HealthSpec:
        _check_bands(self.bands, "health.bands")
        if sum(c.weight for c in self.categories.values()) <= 0:
            raise ValueError("health.categories: weights must not all be 0")
        signals = [s for c in self.categories.values() for s in c.signals]
        if dupes := sorted({s for s in signals if signals.count(s) > 1}):
            raise ValueError(f"health.categories: signals in more than one category: {dupes}")
        seen: dict[str, str] = {}
        for seg, variant in self.segments.items():
            for alias in [seg, *variant.aliases]:
                key = segment_key(alias)
                if seen.setdefault(key, seg) != seg:
                    raise ValueError(f"segment alias {alias!r} used by {seen[key]!r} and {seg!r}")
            self._check_overrides(seg, variant)
        return self

    def _check_overrides(self, seg: str, variant: SegmentVariant) -> None:
        for cat, w in variant.category_weights.items():
            if cat not in self.categories or w < 0:
                raise ValueError(f"segments.{seg}.category_weights: bad category or weight {cat!r}")
        for cat, weights in variant.signal_weights.items():
            known = self.categories.get(cat)
            for sig, w in weights.items():
                if known is None or sig not in known.signals or w < 0:
                    raise ValueError(
                        f"segments.{seg}.signal_weights.{cat}.{sig}: not a signal of that category "
                        "or negative weight"
                    )


Op = Literal["<", "<=", ">", ">=", "==", "!="]


class Condition(_Frozen):
    """`feature op value`, or `feature op <population quantile of feature>`."""

    feature: str
    op: Op
    value: float | None = None
    quantile: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_threshold(self) -> Condition:
        if self.feature != HEALTH_SCORE:
            _check_feature(self.feature)
        if (self.value is None) == (self.quantile is None):
            raise ValueError(f"condition on {self.feature!r}: give exactly one of value, quantile")
        return self


class RuleSpec(_Frozen):
    name: str
    kind: Literal["risk", "expansion"]
    text: str
    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(min_length=1)


class PqaItem(_Frozen):
    """Points for one PQA behaviour: `points` when `feature >= at_least` (flag), or
    `points` per unit of the feature plus `points_missing` per unit of `window - value`."""

    feature: str
    points: float
    mode: Literal["flag", "per_unit"] = "flag"
    at_least: float = 1.0
    window: float | None = None
    points_missing: float = 0.0

    @model_validator(mode="after")
    def _valid(self) -> PqaItem:
        _check_feature(self.feature)
        if self.mode == "per_unit" and self.points_missing and self.window is None:
            raise ValueError(f"pqa item {self.feature!r}: points_missing needs window")
        return self


class PqaSpec(_Frozen):
    items: dict[str, PqaItem]
    cap_min: float = 0
    cap_max: float = 100
    bands: list[Band]

    @model_validator(mode="after")
    def _bands(self) -> PqaSpec:
        _check_bands(self.bands, "pqa.bands")
        return self


class InterventionRow(_Frozen):
    """One row of the play table: all given conditions must hold; first matching row wins."""

    intervention: str
    response_time: str
    bands: list[str] | None = None
    falling: bool | None = None
    risks_any: list[str] | None = None
    churn_probability_at_least: float | None = Field(None, ge=0, le=1)


class ExpansionPlaySpec(_Frozen):
    by_band: dict[str, str | None]
    needs_trigger_or_probability: float = Field(ge=0, le=1)
    churn_probability_gate: float = Field(ge=0, le=1)


class PlaysSpec(_Frozen):
    interventions: list[InterventionRow]
    expansion: ExpansionPlaySpec


class RenewalSpec(_Frozen):
    alert_days: list[int] = Field(min_length=1)
    high_risk_bands: list[str]
    churn_probability_high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _positive_days(self) -> RenewalSpec:
        if min(self.alert_days) <= 0:
            raise ValueError(f"renewals.alert_days must be positive, got {self.alert_days}")
        return self


class NrrBandsSpec(_Frozen):
    thresholds: list[float] = Field(min_length=1)
    names: list[str]
    strategies: list[str]


class BenchmarkSpec(_Frozen):
    median: float = Field(gt=0)
    top_quartile: float = Field(gt=0)
    best: float = Field(gt=0)


# Cohorts (segment, industry, signup quarter) with fewer accounts at the window start are
# shown greyed in the report and never ranked or headlined: a 5-account cohort at 328% is noise.
MIN_COHORT_ACCOUNTS = 10


class RevenueSpec(_Frozen):
    nrr_bands: NrrBandsSpec
    segment_benchmarks: dict[str, BenchmarkSpec] = Field(default_factory=dict)
    min_cohort_accounts: int = Field(MIN_COHORT_ACCOUNTS, ge=1)

    def bands(self) -> NrrBands:
        spec = self.nrr_bands
        return NrrBands(tuple(spec.thresholds), tuple(spec.names), tuple(spec.strategies))

    def benchmarks(self) -> dict[str, SegmentBenchmark]:
        return {
            name: SegmentBenchmark(b.median, b.top_quartile, b.best)
            for name, b in self.segment_benchmarks.items()
        }

    @model_validator(mode="after")
    def _consistent(self) -> RevenueSpec:
        try:
            self.bands()
        except ValueError as exc:
            raise ValueError(f"revenue.nrr_bands: {exc}") from None
        return self


class RulesConfig(_Frozen):
    health: HealthSpec
    pqa: PqaSpec
    rules: list[RuleSpec]
    plays: PlaysSpec
    renewals: RenewalSpec
    revenue: RevenueSpec

    @model_validator(mode="after")
    def _cross_refs(self) -> RulesConfig:
        bands = {b.name for b in self.health.bands}
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rules: rule names must be unique")
        for row in self.plays.interventions:
            if unknown := set(row.bands or ()) - bands:
                raise ValueError(f"plays.interventions: unknown health bands {sorted(unknown)}")
            if unknown := set(row.risks_any or ()) - set(names):
                raise ValueError(f"plays.interventions: unknown rules {sorted(unknown)}")
        if set(self.plays.expansion.by_band) != bands:
            raise ValueError("plays.expansion.by_band must list every health band exactly")
        if unknown := set(self.renewals.high_risk_bands) - bands:
            raise ValueError(f"renewals.high_risk_bands: unknown health bands {sorted(unknown)}")
        return self


class RulesConfigError(ValueError):
    """A rules file that does not match the schema; the message names each wrong key path."""


def load_rules_config(path: Path | None = None) -> RulesConfig:
    """Read and validate a rules YAML (None -> the packaged experiments/rules.yaml)."""
    source = path or DEFAULT_RULES
    try:
        raw = yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"rules config not found: {source}") from None
    try:
        return RulesConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  {line}" for line in validation_problems(exc, RulesConfig, raw))
        raise RulesConfigError(f"invalid rules config {source}:\n{problems}") from exc


def validation_problems(exc: ValidationError, schema: type[BaseModel], data: Any) -> list[str]:
    """One line per wrong key path of a YAML config: `path: problem (got value)`.

    Union member tags that pydantic adds to error locations are dropped, so the path is
    the one the user wrote; an unknown key gets the closest valid key as a suggestion.
    """
    lines: dict[str, list[str]] = {}
    for err in exc.errors():
        keys = _written_path(err["loc"], data)
        where = ".".join(str(k) for k in keys) or "(top level)"
        if err["type"] == "extra_forbidden":
            problem = f"unknown key{_suggestion(str(keys[-1]), _valid_keys(schema, keys[:-1]))}"
        elif err["type"] == "missing":
            problem = "required key is missing"
        elif isinstance(err["input"], dict | list):  # a whole section: its value says nothing
            problem = err["msg"]
        else:
            problem = f"{err['msg']} (got {_short(err['input'])})"
        if problem not in lines.setdefault(where, []):
            lines[where].append(problem)
    return [f"{where}: {' or '.join(problems)}" for where, problems in lines.items()]


def _written_path(loc: Sequence[int | str], data: Any) -> list[int | str]:
    """The error location as keys of the input (union member tags left out)."""
    keys: list[int | str] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and (part in node or last):
            keys.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            keys.append(part)
            node = node[part]
    return keys


def _members(annotation: Any) -> Iterator[Any]:
    """The alternatives of a union (or Annotated) type, else the type itself."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(annotation):
            yield from _members(arg)
    elif origin is typing.Annotated:
        yield from _members(typing.get_args(annotation)[0])
    else:
        yield annotation


def _valid_keys(schema: type[BaseModel], keys: Sequence[int | str]) -> list[str]:
    """Field names of the model(s) found at `keys` below `schema`."""
    current: list[Any] = [schema]
    for key in keys:
        below: list[Any] = []
        for member in (m for ann in current for m in _members(ann)):
            if isinstance(member, type) and issubclass(member, BaseModel):
                field = member.model_fields.get(str(key))
                if field is not None:
                    below.append(field.annotation)
            elif typing.get_origin(member) in (list, tuple, dict) and typing.get_args(member):
                below.append(
                    typing.get_args(member)[-1 if typing.get_origin(member) is dict else 0]
                )
        current = below
    return sorted(
        {
            name
            for member in (m for ann in current for m in _members(ann))
            if isinstance(member, type) and issubclass(member, BaseModel)
            for name in member.model_fields
        }
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _suggestion(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid keys: {', '.join(valid)})" if valid else ""
