"""The plays recorded through the API: an append-only JSON-lines file in the workspace.

One line per play, written whole under an exclusive lock and flushed to disk, so concurrent
writers (several API workers) never interleave and a crash loses at most the line being
written; a line that does not parse (a torn write) is skipped on reading, never fatal.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS: tuple[str, ...] = ("account_id", "play", "owner", "started_at", "notes", "recorded_at")


def append_play(path: Path, record: dict[str, Any]) -> None:
    """Append one play (JSON-serialisable values) to the file, creating it if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({k: record.get(k) for k in COLUMNS}, ensure_ascii=False) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_plays(path: Path) -> pd.DataFrame:
    """Every recorded play (started_at as naive UTC); an absent file is no plays."""
    rows: list[dict[str, Any]] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: skipped, the rest still counts
            if isinstance(item, dict) and item.get("account_id") and item.get("started_at"):
                rows.append(item)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    started = pd.to_datetime(frame["started_at"], utc=True, errors="coerce")
    frame["started_at"] = started.dt.tz_localize(None).astype("datetime64[ns]")
    return frame[frame["started_at"].notna()].reset_index(drop=True)
