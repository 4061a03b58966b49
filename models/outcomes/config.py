"""Schemas and loaders of experiments/outcomes.yaml and experiments/targets.yaml.

Both ship as package data (the installed `nrr` finds them from any folder); a user's own
copy is passed with --outcomes / --targets. A wrong key is reported by its key path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.rules.config import segment_key, validation_problems

OUTCOMES_FILE = "outcomes.yaml"
TARGETS_FILE = "targets.yaml"
POOLED_SEGMENT = "All"
# The churn reasons models/outcomes/reasons.py can infer; the config lists their win-back
# plays and the order they are tested in, the catch-all last.
CHAMPION_LEFT = "champion left"
BUDGET = "budget / pricing"
ONBOARDING = "poor onboarding"
MISSING_FEATURE = "missing feature"
UNKNOWN_REASON = "competitor switch / unknown"
KNOWN_REASONS: tuple[str, ...] = (
    CHAMPION_LEFT,
    BUDGET,
    ONBOARDING,
    MISSING_FEATURE,
    UNKNOWN_REASON,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimingBand(_Frozen):
    name: str = Field(min_length=1)
    max_days: int | None = Field(None, ge=0)
    root_cause: str = ""
    prevention: str = ""


class WinbackReason(_Frozen):
    reason: str = Field(min_length=1)
    approach: str
    window_days: tuple[int, int]
    message: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> WinbackReason:
        low, high = self.window_days
        if not 0 <= low <= high:
            raise ValueError(
                f"window_days must be [from, to] with 0 <= from <= to, got {low, high}"
            )
        return self


class WinbackSpec(_Frozen):
    lookback_days: int = Field(gt=0)
    horizon_days: int = Field(gt=0)
    reason_window_days: int = Field(gt=0)
    onboarding_bands: list[str] = Field(min_length=1)
    reasons: list[WinbackReason] = Field(min_length=1)

    @model_validator(mode="after")
    def _known(self) -> WinbackSpec:
        # the reasons are detectors in models/outcomes/reasons.py: names must match them
        names = [r.reason for r in self.reasons]
        if unknown := sorted(set(names) - set(KNOWN_REASONS)):
            raise ValueError(
                f"winback.reasons: unknown reason(s) {unknown}; known: {list(KNOWN_REASONS)}"
            )
        if names[-1] != UNKNOWN_REASON or len(set(names)) != len(names):
            raise ValueError(f"winback.reasons: each reason once, {UNKNOWN_REASON!r} last")
        return self

    def reason(self, name: str) -> WinbackReason:
        for row in self.reasons:
            if row.reason == name:
                return row
        raise KeyError(f"winback.reasons has no reason {name!r}")


class InterventionSpec(_Frozen):
    outcome_days: int = Field(gt=0)
    saved_bands: list[str] = Field(min_length=1)
    caliper: float = Field(gt=0, le=1)
    controls_per_treated: int = Field(ge=1, le=20)


class OutcomesConfig(_Frozen):
    timing_bands: list[TimingBand] = Field(min_length=1)
    winback: WinbackSpec
    interventions: InterventionSpec

    @model_validator(mode="after")
    def _bands(self) -> OutcomesConfig:
        bounds = [b.max_days for b in self.timing_bands]
        if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            raise ValueError("timing_bands: only the last band has max_days null (no upper bound)")
        inner = [int(b) for b in bounds[:-1] if b is not None]
        if inner != sorted(set(inner)):
            raise ValueError("timing_bands: max_days must increase strictly from band to band")
        names = {b.name for b in self.timing_bands}
        if unknown := sorted(set(self.winback.onboarding_bands) - names):
            raise ValueError(f"winback.onboarding_bands: not timing bands: {unknown}")
        return self


class SegmentTarget(_Frozen):
    segment: str = Field(min_length=1)
    nrr: float = Field(gt=0, le=5)
    owner: str = Field(min_length=1)
    quarter_nrr: float | None = Field(None, gt=0, le=5)

    @property
    def next_quarter(self) -> float:
        """The next quarter's NRR target: given, or the annual target's quarterly pace."""
        return self.quarter_nrr if self.quarter_nrr is not None else self.nrr**0.25


class TargetsConfig(_Frozen):
    targets: list[SegmentTarget] = Field(min_length=1)
    # status by the chance of reaching the annual target: on track at or above `on_track`,
    # at risk from `at_risk`, off track below
    on_track: float = Field(0.6, gt=0, lt=1)
    at_risk: float = Field(0.3, gt=0, lt=1)

    @model_validator(mode="after")
    def _unique(self) -> TargetsConfig:
        keys = [segment_key(t.segment) for t in self.targets]
        if len(set(keys)) != len(keys):
            raise ValueError("targets: each segment may have one target only")
        if self.at_risk >= self.on_track:
            raise ValueError("at_risk must be below on_track")
        return self


class OutcomesConfigError(ValueError):
    """A config file that does not match its schema; the message names each wrong key."""


M = TypeVar("M", bound=BaseModel)


def _load(path: Path | None, default: str, schema: type[M]) -> M:
    if path is None:
        text = resources.files("experiments").joinpath(default).read_text(encoding="utf-8")
        where = f"(packaged) experiments/{default}"
    else:
        if not path.is_file():
            raise OutcomesConfigError(f"{path}: no such file")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OutcomesConfigError(f"{where} is not valid YAML: {exc}") from None
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc, schema, raw))
        raise OutcomesConfigError(f"invalid {where}: {problems}") from None


def load_outcomes_config(path: Path | None = None) -> OutcomesConfig:
    """Read and validate an outcomes YAML (None -> the packaged experiments/outcomes.yaml)."""
    return _load(path, OUTCOMES_FILE, OutcomesConfig)


def load_targets(path: Path | None = None) -> TargetsConfig:
    """Read and validate a targets YAML (None -> the packaged experiments/targets.yaml)."""
    return _load(path, TARGETS_FILE, TargetsConfig)
