"""Opening a data folder from a command: a contract violation prints its report, exit 1.

Every command that reads an export goes through here, so none of them shows a traceback
for bad input (two of them used to) and all print the same report as `nrr validate`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console

from features.load import load_source
from features.source import DataSource
from features.validate import InvalidDataError

_out = Console()


def load_or_exit(
    data: Path, *, now: pd.Timestamp, extracted_at: pd.Timestamp | None = None
) -> DataSource:
    """The validated source, or the validation report on stdout and exit code 1."""
    try:
        return load_source(data, extracted_at=extracted_at, now=now)
    except InvalidDataError as exc:
        _out.print(exc.report.render())
        raise typer.Exit(code=1) from None
