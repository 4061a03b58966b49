"""`--as-of`, `--end`, `--start`, `--extracted-at`: one parser for every command's time options.

Snapshot dates are naive UTC; an offset given on the command line is converted, not kept (a
tz-aware `nrr drift --as-of` compared with the naive snapshot dates and crashed).
"""

from __future__ import annotations

import pandas as pd
import pytest
import typer

from features.cli import parse_time_option


def test_naive_values_pass_through_and_none_stays_none() -> None:
    assert parse_time_option(None, "--as-of") is None
    assert parse_time_option("2026-07-01", "--as-of") == pd.Timestamp(2026, 7, 1)


def test_an_offset_is_converted_to_naive_utc() -> None:
    got = parse_time_option("2026-07-01T02:00:00+02:00", "--as-of")
    assert got == pd.Timestamp(2026, 7, 1) and got.tzinfo is None
    assert parse_time_option("2026-07-01T00:00:00Z", "--end") == pd.Timestamp(2026, 7, 1)


def test_a_wrong_value_names_the_option() -> None:
    with pytest.raises(typer.BadParameter, match=r"--as-of: 'yesterday' is not an ISO-8601"):
        parse_time_option("yesterday", "--as-of")
