"""The one place the product reads the wall clock.

Only command-line edges call it, and only for defaults (the export's time when no
manifest declares it). Everything below them takes "now" or as_of as an argument, so
features/ never reads the clock (it gets `utc_now` from the root command).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


def utc_now() -> pd.Timestamp:
    """The current time in UTC as a naive timestamp, like every timestamp in the contract."""
    return pd.Timestamp(datetime.now(UTC)).tz_localize(None)
