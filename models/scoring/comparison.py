"""When a driver's "then" is: the account's row closest to 90 days before, within 30 days of it.

One definition for every path that finds the earlier row (the served snapshots file,
`nrr score`'s point-in-time build, a POSTed row matched against the served book). Kept
apart from `drivers` so the server's startup path does not import LightGBM for two numbers.
"""

from __future__ import annotations

COMPARISON_DAYS = 90
COMPARISON_TOLERANCE_DAYS = 30


def comparison_gap_ok(days: int) -> bool:
    """Whether a row `days` before the scored one may serve as its "90 days ago"."""
    return days > 0 and abs(days - COMPARISON_DAYS) <= COMPARISON_TOLERANCE_DAYS
