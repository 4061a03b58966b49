"""Which of the customer's own event names play which part (event_map.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

EVENT_MAP_FILE = "event_map.yaml"


class EventMap(BaseModel):
    """Every key optional; a name may appear under several keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    core_features: tuple[str, ...] = ()
    advanced_features: tuple[str, ...] = ()
    admin_events: tuple[str, ...] = ()
    invite_events: tuple[str, ...] = ()
    gate_events: tuple[str, ...] = ()
    metered_events: tuple[str, ...] = ()
    workspace_events: tuple[str, ...] = ()

    def roles(self) -> dict[str, tuple[str, ...]]:
        return {k: getattr(self, k) for k in type(self).model_fields}


# The demo company's taxonomy: the default when a data folder has no event_map.yaml.
DEMO_EVENT_MAP = EventMap(
    core_features=(
        "report_created",
        "dashboard_viewed",
        "record_imported",
        "search_run",
        "comment_added",
    ),
    advanced_features=(
        "workflow_automated",
        "api_call",
        "custom_field_created",
        "export_scheduled",
    ),
    admin_events=("settings_changed", "user_provisioned", "permission_updated"),
    invite_events=("teammate_invited",),
    gate_events=("feature_gate_hit",),
    metered_events=("api_call", "record_imported"),
    workspace_events=("workspace_created",),
)


class EventMapError(ValueError):
    """event_map.yaml is unreadable or has an unknown key or a wrong value."""


def parse_event_map(text: str, *, origin: str) -> EventMap:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise EventMapError(f"{origin}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise EventMapError(f"{origin}: expected a mapping of role -> list of event names")
    try:
        return EventMap.model_validate({k: tuple(v or ()) for k, v in raw.items()})
    except (ValidationError, TypeError) as exc:
        known = ", ".join(EventMap.model_fields)
        raise EventMapError(f"{origin}: {exc}. Known keys: {known}") from exc


def load_event_map(folder: Path) -> tuple[EventMap, bool]:
    """The folder's event map, and whether it came from a file (False: the demo default)."""
    path = folder / EVENT_MAP_FILE
    if not path.is_file():
        return DEMO_EVENT_MAP, False
    return parse_event_map(path.read_text(), origin=str(path)), True


def dump_event_map(event_map: EventMap) -> str:
    return yaml.safe_dump({k: list(v) for k, v in event_map.roles().items()}, sort_keys=False)
