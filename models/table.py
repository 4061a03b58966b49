"""Rows as named columns of plain arrays: snapshot-shaped input without DataFrame overhead.

The rule scores and the models read a `Table` exactly as they read a snapshot DataFrame
(`name in t.columns`, `t[name]`, `len(t)`), so one implementation of each rule serves both;
a request of one account then costs microseconds instead of pandas' per-column overhead.
"""

from __future__ import annotations

from collections.abc import Iterable, KeysView, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Table:
    """Equal-length 1-d arrays by column name (numeric columns float64, others object)."""

    data: Mapping[str, np.ndarray]
    n: int

    def __post_init__(self) -> None:
        bad = [k for k, v in self.data.items() if len(v) != self.n]
        if bad:
            raise ValueError(f"columns {bad} do not have {self.n} rows")

    @property
    def columns(self) -> KeysView[str]:
        return self.data.keys()

    @property
    def index(self) -> None:
        return None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def take(self, positions: Iterable[int] | np.ndarray) -> Table:
        """The rows at `positions`, in that order."""
        pos = np.asarray(list(positions) if not isinstance(positions, np.ndarray) else positions)
        return Table({k: v[pos] for k, v in self.data.items()}, int(len(pos)))

    def row(self, i: int) -> dict[str, Any]:
        """Row `i` as a plain dict (what `frame.iloc[i]` is to a DataFrame)."""
        return {k: v[i] for k, v in self.data.items()}

    def to_frame(self) -> pd.DataFrame:
        """The same rows as a DataFrame."""
        return pd.DataFrame(dict(self.data))
