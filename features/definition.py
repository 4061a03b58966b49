"""What a set of features means: the snapshot settings and the event-map roles they used.

A model is only right on features computed the way its training features were. The
definition travels with the snapshot Parquet (schema metadata) and with the registered model
(its metadata), and every command that rebuilds features for a model (score, forecast,
drift, backtest-forecast) builds them with the model's definition instead of defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from features.config import SnapshotConfig
from features.event_map import EventMap
from features.source import DataSource

PARQUET_KEY = b"nrr.feature_definition"
METADATA_KEY = "feature_definition"


@dataclass(frozen=True)
class FeatureDefinition:
    """Snapshot settings plus the event names of each role (None: the data's own map)."""

    snapshot: SnapshotConfig
    event_map: EventMap | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.model_dump(mode="json"),
            "event_map": None
            if self.event_map is None
            else {k: list(v) for k, v in self.event_map.roles().items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureDefinition:
        roles = data.get("event_map")
        return cls(
            snapshot=SnapshotConfig.model_validate(data.get("snapshot") or {}),
            event_map=None if roles is None else EventMap(**roles),
        )

    @classmethod
    def of_source(cls, source: DataSource, snapshot: SnapshotConfig) -> FeatureDefinition:
        return cls(snapshot=snapshot, event_map=source.event_map)

    def apply(self, source: DataSource) -> DataSource:
        """The source with this definition's event roles (the names a model was trained on)."""
        return source if self.event_map is None else replace(source, event_map=self.event_map)


def from_model_metadata(metadata: dict[str, Any] | None) -> FeatureDefinition | None:
    """The definition stored with a registered model, None for models trained before it was."""
    data = (metadata or {}).get(METADATA_KEY)
    return None if data is None else FeatureDefinition.from_dict(data)


def write_snapshots(frame: Any, path: Path, definition: FeatureDefinition) -> None:
    """Write a snapshot frame as Parquet with its definition in the schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PARQUET_KEY] = json.dumps(definition.to_dict()).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


def read_definition(path: Path) -> FeatureDefinition | None:
    """The definition a snapshot Parquet was built with (None: written without one)."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(PARQUET_KEY)
    return None if raw is None else FeatureDefinition.from_dict(json.loads(raw))
