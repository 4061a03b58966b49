"""Opening a data folder from a command: a contract violation prints its report, exit 1.

Every command that reads an export goes through here, so none of them shows a traceback
for bad input (two of them used to) and all print the same report as `nrr validate`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console

from features.engine.catalog import CatalogTables
from features.load import load_source
from features.source import DataSource
from features.validate import InvalidDataError

_out = Console()
_err = Console(stderr=True)


def load_or_exit(
    data: Path | CatalogTables,
    *,
    now: pd.Timestamp,
    extracted_at: pd.Timestamp | None = None,
    engine: str = "duckdb",
) -> DataSource:
    """The validated source (in the named engine), or the validation report and exit code 1."""
    try:
        return load_source(data, extracted_at=extracted_at, now=now, engine=engine)
    except InvalidDataError as exc:
        _out.print(exc.report.render())
        raise typer.Exit(code=1) from None


def read_parquet_or_exit(path: Path, option: str) -> pd.DataFrame:
    """A Parquet file the user named on `option`, or one clear line and exit 1."""
    if not path.is_file():
        _err.print(f"[red]error:[/red] {option} {path}: no such file")
        raise typer.Exit(1)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        _err.print(f"[red]error:[/red] {option} {path} is not a readable Parquet file: {exc}")
        raise typer.Exit(1) from None
