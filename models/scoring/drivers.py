"""Per-account drivers: what pushes a model's score up or down most (TreeSHAP), in words.

A driver is a *signal*, not a column: the features that are windows or views of one signal
(`features.registry.DISPLAY[...].group`, e.g. tickets over 30 and 90 days) are one driver
whose contribution is the sum of theirs, shown by its strongest member. So an account's
top drivers are different things.

Each driver text names the signal, its value with its unit (at most 3 significant
digits; shares as %, days as days, money as $) and how it compares: with the account's
own value about 90 days earlier (when an `earlier` frame is given) and with its
segment's peers among the scored accounts (percentile). A missing value is never a cause:
features without a value are left out. Contract facts (term, days to renewal, plan, ARR,
segment) are `context`, reported apart from the drivers a CSM can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.registry import BY_NAME, DISPLAY, Display
from models.scoring.booster import ScoringModel

_OUTCOME = {"churn": "churn risk", "expansion": "expansion likelihood"}
# Fewer peers than this in the account's segment: compare with every scored account.
MIN_PEERS = 5
ALL_PEERS = "all"


@dataclass(frozen=True)
class Driver:
    """One signal's contribution to one account's score, with a plain-language sentence.

    `feature` is the group's strongest member (its value is `value`); `features` every
    member whose value is known (their contributions are summed into `contribution`).
    """

    feature: str
    value: float | str | None
    contribution: float
    direction: Literal["raises", "lowers"]
    text: str
    features: tuple[str, ...] = ()
    earlier: float | str | None = None
    peer_percentile: float | None = None


@dataclass(frozen=True)
class Explanation:
    """One account's actionable drivers and its contract context, strongest first."""

    drivers: list[Driver]
    context: list[Driver]


def top_drivers(
    model: ScoringModel,
    frame: Any,
    *,
    k: int = 5,
    matrix: np.ndarray | None = None,
    earlier: pd.DataFrame | None = None,
    peers: Any = None,
) -> list[list[Driver]]:
    """Up to k actionable drivers per row of `frame`, largest absolute contribution first."""
    found = explain(model, frame, k=k, matrix=matrix, earlier=earlier, peers=peers)
    return [e.drivers for e in found]


def explain(
    model: ScoringModel,
    frame: Any,
    *,
    k: int = 5,
    matrix: np.ndarray | None = None,
    earlier: pd.DataFrame | None = None,
    peers: Any = None,
) -> list[Explanation]:
    """Up to k drivers and k context items per row of `frame` (a DataFrame or a `Table`).

    `matrix`: the model's input already built from `frame` (saves rebuilding it);
    `earlier`: the same accounts' feature rows about 90 days before (account_id, as_of and
    features; accounts without one get no such comparison); `peers`: the scored population
    for the percentiles (default `frame` itself), or a `Peers` of it kept across calls (the
    server's book: its sorted values are then computed once, not per request).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    contrib = model.contributions(frame if matrix is None else matrix)[:, :-1]
    outcome = _OUTCOME.get(str(model.metadata.get("target", "")), "score")
    names = list(model.feature_names)
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        groups.setdefault(_display(name).group, []).append(j)
    values = {name: _column_values(frame, name) for name in names}
    population = peers if isinstance(peers, Peers) else Peers(frame if peers is None else peers)
    segments = _column_values(frame, "segment")
    before = _Earlier(earlier, _column_values(frame, "account_id"), _column_values(frame, "as_of"))
    result: list[Explanation] = []
    for i in range(len(frame)):
        segment = None if segments is None else _plain_value(segments[i])
        found: list[tuple[float, int, Driver]] = []
        for order, members in enumerate(groups.values()):
            known = [j for j in members if _plain_value(values[names[j]][i]) is not None]
            total = float(sum(contrib[i, j] for j in known))
            if not known or total == 0.0:
                continue
            lead = max(known, key=lambda j: abs(contrib[i, j]))
            row_values = {names[j]: _plain_value(values[names[j]][i]) for j in members}
            driver = _driver(
                names[lead],
                row_values,
                total,
                tuple(names[j] for j in known),
                outcome=outcome,
                segment=None if segment is None else str(segment),
                population=population,
                earlier=before.at(i),
            )
            found.append((abs(total), order, driver))
        found.sort(key=lambda t: (-t[0], t[1]))
        drivers = [d for _, _, d in found if not _display(d.feature).context][:k]
        context = [d for _, _, d in found if _display(d.feature).context][:k]
        result.append(Explanation(drivers, context))
    return result


def _display(name: str) -> Display:
    return DISPLAY[name]


def _column_values(frame: Any, name: str) -> Any:
    # The raw (not encoded) values: category strings, numbers, missing markers.
    if frame is None or name not in frame.columns:
        return None
    col = frame[name]
    return col.to_numpy() if isinstance(col, pd.Series) else col


def _plain_value(value: object) -> float | str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[call-overload]
        return None
    if isinstance(value, str):
        return value
    out = float(value)  # type: ignore[arg-type]
    return out if math.isfinite(out) else None


class Peers:
    """Sorted known values per (feature, segment) of the scored population, built lazily.

    Safe to share between request threads: a (feature, segment) computed twice at once is
    the same array, and a dict assignment is atomic.
    """

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.segments = _column_values(frame, "segment")
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    def values(self, feature: str, segment: str | None) -> tuple[np.ndarray, str]:
        """Known values of the segment (or of all accounts when it has too few) and its name."""
        if segment is not None:
            seg = self._sorted(feature, segment)
            if len(seg) >= MIN_PEERS:
                return seg, segment
        everyone = self._sorted(feature, ALL_PEERS)
        return (everyone if len(everyone) >= MIN_PEERS else everyone[:0]), ALL_PEERS

    def _sorted(self, feature: str, segment: str) -> np.ndarray:
        key = (feature, segment)
        if key not in self.cache:
            raw = _column_values(self.frame, feature)
            if raw is None or BY_NAME[feature].kind == "category":
                self.cache[key] = np.empty(0)
                return self.cache[key]
            values = pd.to_numeric(pd.Series(np.asarray(raw, dtype=object)), errors="coerce")
            mask = values.notna().to_numpy()
            if segment != ALL_PEERS and self.segments is not None:
                mask = mask & np.asarray([str(s) == segment for s in self.segments], dtype=bool)
            self.cache[key] = np.sort(values.to_numpy(dtype=float)[mask])
        return self.cache[key]


class _Earlier:
    """Each scored row's feature values about 90 days earlier, matched by account_id."""

    def __init__(self, earlier: pd.DataFrame | None, accounts: Any, as_ofs: Any) -> None:
        self.rows: dict[str, Any] = {}
        self.days: list[int | None] = []
        self.accounts: list[str] = []
        if earlier is None or earlier.empty or accounts is None:
            return
        keyed = earlier.drop_duplicates("account_id", keep="last")
        self.rows = dict(
            zip(keyed["account_id"].astype(str), keyed.to_dict("records"), strict=True)
        )
        for i, account in enumerate(accounts):
            rec = self.rows.get(str(account))
            when = None if as_ofs is None or rec is None else as_ofs[i]
            if when is None or pd.isna(when) or pd.isna(rec.get("as_of")):  # type: ignore[union-attr]
                self.days.append(None)
                continue
            gap = (pd.Timestamp(when) - pd.Timestamp(rec["as_of"])).days  # type: ignore[index]
            self.days.append(gap if gap > 0 else None)
        self.accounts = [str(a) for a in accounts]

    def at(self, i: int) -> tuple[dict[str, Any], int] | None:
        if not self.days or self.days[i] is None:
            return None
        return self.rows[self.accounts[i]], int(self.days[i])  # type: ignore[arg-type]


def _driver(
    feature: str,
    row_values: dict[str, float | str | None],
    contribution: float,
    members: tuple[str, ...],
    *,
    outcome: str,
    segment: str | None,
    population: Peers,
    earlier: tuple[dict[str, Any], int] | None,
) -> Driver:
    value = row_values[feature]
    direction: Literal["raises", "lowers"] = "raises" if contribution > 0 else "lowers"
    spec = _display(feature)
    then = None if earlier is None else _plain_value(earlier[0].get(feature))
    percentile = None
    if spec.context:
        head = context_text(feature, row_values)
        return Driver(
            feature, value, contribution, direction, f"{head}; {direction} the {outcome}", members
        )
    parts = []
    if then is not None and earlier is not None:
        parts.append(_earlier_text(feature, value, then, earlier[1]))
    if isinstance(value, float):
        peer_values, group = population.values(feature, segment)
        if len(peer_values):
            percentile, peer_text = _peer_text(feature, value, peer_values, group)
            parts.append(peer_text)
    head = describe_value(feature, value)
    compared = f" ({'; '.join(parts)})" if parts else ""
    text = f"{head}{compared}; {direction} the {outcome}"
    return Driver(feature, value, contribution, direction, text, members, then, percentile)


def describe_value(feature: str, value: float | str | None) -> str:
    """'<label>: <value with unit>' (or the yes/no sentence of a flag), in plain language."""
    spec = _display(feature)
    if spec.fmt == "bool":
        if not isinstance(value, float):
            return f"{spec.label}: not recorded"
        return spec.yes if value >= 0.5 else spec.no
    return f"{spec.label}: {format_value(feature, value)}"


def format_value(feature: str, value: float | str | None) -> str:
    """A feature's value with its unit, at most 3 significant digits."""
    spec = _display(feature)
    if value is None:
        return "not recorded"
    if isinstance(value, str):
        return _category(value)
    fmt = spec.fmt
    if fmt == "share":
        return _percent(value * 100)
    if fmt == "change":
        return _signed(_percent(value * 100), value)
    if fmt == "points":
        points = value * 100
        unit = "point" if abs(points) == 1 else "points"
        return f"{_signed(_sig(points), points)} {unit}"
    if fmt == "signed":
        return _signed(_sig(value), value)
    if fmt == "ratio":
        return f"{_sig(value)}x"
    if fmt == "days":
        return _days(value)
    if fmt == "hours":
        return f"{_sig(value)} hours" if abs(value) < 48 else _days(value / 24)
    if fmt == "money":
        return f"-${_sig(-value)}" if value < 0 else f"${_sig(value)}"
    if fmt == "bool":
        return "yes" if value >= 0.5 else "no"
    if fmt == "count" and spec.noun:
        noun = spec.noun[:-1] if value == 1 and spec.noun.endswith("s") else spec.noun
        return f"{_sig(value)} {noun}"
    return _sig(value)


def context_text(feature: str, row_values: dict[str, float | str | None]) -> str:
    """The contract fact of a context feature (with its group's other values), as a phrase."""
    spec = _display(feature)
    if spec.group == "term":
        term = row_values.get("billing_term")
        days = row_values.get("days_to_renewal")
        if term == "monthly":
            return "Month-to-month contract (no committed term)"
        name = f"{_category(term).capitalize()} term" if isinstance(term, str) else "Committed term"
        if not isinstance(days, float):
            return name
        if days < 0:
            return f"{name}, ended {_days(-days)} ago without a new period"
        return f"{name}, ends in {_days(days)}"
    value = row_values[feature]
    if feature == "tenure_days" and isinstance(value, float):
        return f"Customer for {_days(value)}"
    return f"{spec.label}: {format_value(feature, value)}"


def _earlier_text(feature: str, value: float | str | None, then: float | str, days: int) -> str:
    spec = _display(feature)
    if spec.fmt == "bool" and isinstance(value, float) and isinstance(then, float):
        same = (value >= 0.5) == (then >= 0.5)
        return f"the same {days} days ago" if same else f"not so {days} days ago"
    return f"{days} days ago: {format_value(feature, then)}"


def _peer_text(feature: str, value: float, peers: np.ndarray, segment: str) -> tuple[float, str]:
    group = "all scored accounts" if segment == ALL_PEERS else f"{segment} accounts"
    n = len(peers)
    if _display(feature).fmt == "bool":
        alike = float(np.mean((peers >= 0.5) == (value >= 0.5))) * 100
        return alike, f"as for {_percent(alike)} of {group}"
    below = np.searchsorted(peers, value, side="left")
    upto = np.searchsorted(peers, value, side="right")
    percentile = (below + 0.5 * (upto - below)) / n * 100
    if percentile < 40:
        return percentile, f"bottom {_ceil5(percentile)}% of {group}"
    if percentile > 60:
        return percentile, f"top {_ceil5(100 - percentile)}% of {group}"
    return percentile, f"near the median of {group}"


def _ceil5(pct: float) -> int:
    return int(min(100, max(5, 5 * math.ceil(pct / 5 - 1e-9))))


def _category(value: Any) -> str:
    text = str(value)
    return {"monthly": "month-to-month", "multi_year": "multi-year"}.get(text, text)


def _signed(text: str, value: float) -> str:
    return f"+{text}" if value > 0 and not text.startswith("+") else text


def _percent(pct: float) -> str:
    if math.isinf(pct):
        return "unbounded"
    if abs(pct) >= 10 or pct == 0:
        return f"{_sig(round(pct))}%"
    return f"{_sig(pct, 2)}%"


def _days(days: float) -> str:
    if abs(days) >= 730:
        return f"{_sig(days / 365.25, 2)} years"
    whole = round(days)
    return f"{whole} day" if abs(whole) == 1 else f"{whole} days"


def _sig(value: float, digits: int = 3) -> str:
    """`value` with at most `digits` significant digits; K and M above a thousand."""
    if math.isinf(value):
        return "unbounded"
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(rounded) >= scale:
            return _sig(rounded / scale, digits) + suffix
    text = np.format_float_positional(rounded, trim="-")
    return text
