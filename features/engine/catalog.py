"""Tables named in a Spark catalog (`--catalog catalog.schema`) instead of files in a folder.

On Databricks the export usually lives as tables of Unity Catalog (`main.cs.accounts`,
`main.cs.events`, ...) rather than as files one can point at. `CatalogTables` names the
schema holding the contract's tables; the spark engine reads `<schema>.<table>` from the
session's catalog (features/engine/spark_read.py). A catalog holds tables only, so the
event map comes from a YAML file given beside it (else the demo map, with a warning, as
for a folder without event_map.yaml), and the extraction time from --extracted-at (else
the current time). Nothing here imports pyspark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# one or two plain identifiers: `schema` (the session's current catalog) or `catalog.schema`
_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
# `table`, `schema.table` or `catalog.schema.table`
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}")


class CatalogNameError(ValueError):
    """A --catalog value that is not `schema` or `catalog.schema`."""


@dataclass(frozen=True)
class CatalogTables:
    """The contract's tables as `<namespace>.<table>` in the Spark session's catalog."""

    namespace: str  # "catalog.schema" or "schema"
    event_map: Path | None = None  # a YAML event map (the catalog holds no files)

    def table(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def __str__(self) -> str:
        return f"catalog {self.namespace}"


def parse_catalog(value: str, *, event_map: Path | None = None) -> CatalogTables:
    """`schema` or `catalog.schema` as CatalogTables; CatalogNameError (one line) otherwise."""
    name = value.strip()
    if not _NAMESPACE.fullmatch(name):
        raise CatalogNameError(
            f"{value!r} is not a schema name: expected <schema> or <catalog>.<schema> "
            "(letters, digits, underscores)"
        )
    return CatalogTables(name, event_map)


def check_table_name(name: str) -> str:
    """The name, or CatalogNameError (one line) unless it is [catalog.][schema.]table."""
    if not _TABLE_NAME.fullmatch(name):
        raise CatalogNameError(
            f"{name!r} is not a table name: expected [<catalog>.][<schema>.]<table> "
            "(letters, digits, underscores)"
        )
    return name
