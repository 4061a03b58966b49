"""Monte Carlo NRR forecast from per-account probabilities, and forecast evaluation helpers.

Outcome rule, per account and draw over one horizon: one uniform u decides. Churn when
u < p_churn; else expansion when u < p_churn + p_e; else contraction when
u < p_churn + p_e + p_c; else no change. p_e and p_c are p_expand and p_contract, except when
p_expand + p_contract > 1 - p_churn: then both are scaled down by the same factor to share
the remaining mass 1 - p_churn. The outcomes are therefore mutually exclusive and p_churn is
kept exactly.

Amounts: the log ratio x = log(new ARR / old ARR) is N(mu, sigma) truncated to x > 0 for an
expansion and to x < 0 for a contraction, so an expansion always adds ARR and a contraction
removes part of it but never all. x is drawn by rejection from N(mu, sigma), finished by
inverse CDF for the few draws still on the wrong side after a few rounds. Each account-draw
costs one 32-bit random number; only events draw amounts. The forecast covers the existing
book only: no new logos.

Common shocks: accounts are not independent. A quarter with a recession, a pricing change
or a strong launch moves every account's odds together, which independent draws cannot
show, so their intervals are too narrow for the book as a whole. A `RateShock` splits the
draws into scenarios; each scenario shifts every account's churn and expansion log-odds by
one shared normal draw (sigma estimated from how much past quarterly rates moved beyond
binomial noise, see `models.revenue.forecast_book.rate_shock`). With sigma 0 nothing changes.
Over several quarters the shift of quarter q + 1 is `persistence` times that of quarter q plus
a fresh draw (AR(1) with the same spread every quarter). The default 0 (independent quarters)
is what the sigma estimate assumes: it reads the spread from changes between consecutive
quarters as if they were independent. A fully persistent shock (1) made the 4-quarter fan
widen linearly, about twice as wide as its backtest errors on the demo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import log_ndtr, ndtr, ndtri

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

T = TypeVar("T")
POOLED = "All"
FLOW_METRICS: tuple[str, ...] = ("expansion_arr", "contraction_arr", "churned_arr")
METRICS: tuple[str, ...] = ("starting_arr", *FLOW_METRICS, "ending_arr", "nrr", "grr")
_SCALE = float(2**32)  # u is a uniform 32-bit integer
_CHUNK_ELEMENTS = 1 << 20  # account-draws per chunk: small enough to stay in cache
_REJECTION_ROUNDS = 8
_MIN_ACCEPTANCE = 0.25  # below this share on the right side, skip rejection
_TINY = 1e-16
_MIN_STANDARDISED_MU = -8.0  # below this an expansion (contraction) is all but impossible


def quantile_name(q: float) -> str:
    """Column name of a quantile: 0.1 -> 'p10', 0.025 -> 'p2.5'."""
    return f"p{q * 100:g}"


@dataclass(frozen=True)
class RateShock:
    """Shared log-odds shifts of churn and expansion, one per scenario of draws."""

    churn_sigma: float = 0.0
    expand_sigma: float = 0.0
    scenarios: int = 20
    persistence: float = 0.0

    def __post_init__(self) -> None:
        for name in ("churn_sigma", "expand_sigma"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.scenarios < 1:
            raise ValueError(f"scenarios must be >= 1, got {self.scenarios}")
        if not (np.isfinite(self.persistence) and 0.0 <= self.persistence <= 1.0):
            raise ValueError(f"persistence must lie in [0, 1], got {self.persistence}")

    @property
    def active(self) -> bool:
        return self.scenarios > 1 and (self.churn_sigma > 0 or self.expand_sigma > 0)

    def plan(self, draws: int, seed: int, quarters: int = 1) -> list[Scenario]:
        """Per scenario: draws, seed, churn and expansion log-odds shift per quarter.

        Deterministic; the first quarter's shifts do not depend on `quarters`.
        """
        n = min(self.scenarios, draws)
        z = np.random.default_rng([seed, 0x5E0C]).standard_normal((n, 2))
        later = np.random.default_rng([seed, 0x5E0E]).standard_normal((max(quarters - 1, 0), n, 2))
        shifts = [z]
        rho = self.persistence
        for fresh in later:
            shifts.append(rho * shifts[-1] + np.sqrt(1.0 - rho * rho) * fresh)
        path = np.stack(shifts, axis=-1)  # (n, 2, quarters)
        sizes = np.full(n, draws // n)
        sizes[: draws % n] += 1
        seeds = np.random.SeedSequence([seed, 0x5E0D]).generate_state(n)
        return [
            Scenario(
                int(sizes[i]),
                int(seeds[i]),
                self.churn_sigma * path[i, 0],
                self.expand_sigma * path[i, 1],
            )
            for i in range(n)
        ]


@dataclass(frozen=True)
class Scenario:
    """Draws of one common-shock scenario and its log-odds shifts, one per quarter."""

    size: int
    seed: int
    churn_shift: FloatArray
    expand_shift: FloatArray


def _scenarios(shock: RateShock | None, draws: int, seed: int, quarters: int = 1) -> list[Scenario]:
    """Draws, seed and log-odds shifts per scenario; one unshifted scenario without a shock."""
    if shock is None or not shock.active:
        return [Scenario(draws, seed, np.zeros(quarters), np.zeros(quarters))]
    _check_draws(draws)
    return shock.plan(draws, seed, quarters)


def shift_log_odds(p: ArrayLike, shift: float) -> FloatArray:
    """p moved by `shift` on the log-odds scale; 0 and 1 stay where they are."""
    q = np.asarray(p, dtype=float)
    if shift == 0:
        return q
    inner = (q > 0) & (q < 1)
    safe = np.clip(q, 1e-12, 1 - 1e-12)
    moved = 1.0 / (1.0 + np.exp(-(np.log(safe / (1 - safe)) + shift)))
    return np.where(inner, moved, q)


@dataclass(frozen=True)
class _Book:
    """Validated per-account inputs of one horizon, prepared for drawing."""

    arr: FloatArray
    thresholds: tuple[IntArray, IntArray, IntArray]  # cumulative churn, +expand, +contract
    last_event: npt.NDArray[np.uint32]  # largest u that may be an event (32-bit pre-filter)
    any_never: bool  # some account can have no event at all (the pre-filter over-selects)
    expand: _Amounts
    contract: _Amounts


@dataclass(frozen=True)
class _Amounts:
    """Per-account log-ratio distribution of one kind, truncated to sign * x > 0."""

    sign: float
    mu: FloatArray
    sigma: FloatArray
    accept: FloatArray  # probability mass on the right side of 0
    cut: npt.NDArray[np.float32]  # standard-normal bound: z beyond it lands on the right side
    slow: npt.NDArray[np.bool_]  # too little mass on the right side for rejection
    any_slow: bool


def _vector(name: str, values: ArrayLike, n: int) -> FloatArray:
    out = np.asarray(values, dtype=float)
    if out.ndim == 0:
        out = np.full(n, float(out))
    if out.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} has {int((~np.isfinite(out)).sum())} non-finite value(s)")
    return out


def _probability(name: str, values: ArrayLike, n: int) -> FloatArray:
    out = _vector(name, values, n)
    if ((out < 0) | (out > 1)).any():
        raise ValueError(f"{name} must lie in [0, 1]")
    return out


def exclusive_probabilities(
    p_churn: FloatArray, p_expand: FloatArray, p_contract: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Churn first; expansion and contraction share 1 - p_churn proportionally if they exceed it."""
    rest = 1.0 - p_churn
    both = p_expand + p_contract
    scale = np.where(both > rest, rest / np.where(both > 0, both, 1.0), 1.0)
    return p_churn, p_expand * scale, p_contract * scale


def _amount_params(kind: str, mu: ArrayLike, sigma: ArrayLike, n: int, sign: float) -> _Amounts:
    m, s = _vector(f"{kind}_mu", mu, n), _vector(f"{kind}_sigma", sigma, n)
    if (s < 0).any():
        raise ValueError(f"{kind}_sigma must be >= 0")
    # standardised distance of the truncation point; +-inf when sigma is 0
    z = np.divide(sign * m, s, out=np.where(sign * m > 0, np.inf, -np.inf), where=s > 0)
    if (z < _MIN_STANDARDISED_MU).any():
        side = "positive" if sign > 0 else "negative"
        raise ValueError(
            f"{kind}_mu / {kind}_sigma must be >= {_MIN_STANDARDISED_MU} in the {side} "
            f"direction: a {kind} log ratio must be able to be {side}"
        )
    accept = ndtr(z)
    slow = accept < _MIN_ACCEPTANCE
    # rounded toward the right side so that float32 rounding never lets a wrong sign through
    cut = np.nextafter((-sign * z).astype(np.float32), np.float32(sign * np.inf))
    return _Amounts(sign, m, s, accept, cut, slow, bool(slow.any()))


def _book(
    *,
    arr: ArrayLike,
    p_churn: ArrayLike,
    p_expand: ArrayLike,
    p_contract: ArrayLike,
    expand: tuple[ArrayLike, ArrayLike],
    contract: tuple[ArrayLike, ArrayLike],
) -> _Book:
    a = np.asarray(arr, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"arr must be a non-empty 1-D array, got shape {a.shape}")
    n = a.size
    a = _vector("arr", a, n)
    if (a < 0).any():
        raise ValueError("arr must be >= 0")
    return _Book(
        arr=a,
        **_event_thresholds(p_churn, p_expand, p_contract, n),
        expand=_amount_params("expand", *expand, n, sign=1.0),
        contract=_amount_params("contract", *contract, n, sign=-1.0),
    )


def _event_thresholds(
    p_churn: ArrayLike, p_expand: ArrayLike, p_contract: ArrayLike, n: int
) -> dict[str, Any]:
    """The `_Book` fields that depend on the probabilities (checked here)."""
    probs = exclusive_probabilities(
        _probability("p_churn", p_churn, n),
        _probability("p_expand", p_expand, n),
        _probability("p_contract", p_contract, n),
    )
    cumulative = np.cumsum(np.vstack(probs), axis=0)
    # integer thresholds on the 32-bit uniform; p = 1 maps to 2**32, above every draw
    t = np.rint(np.minimum(cumulative, 1.0) * _SCALE).astype(np.int64)
    return {
        "thresholds": (t[0], t[1], t[2]),
        "last_event": np.clip(t[2] - 1, 0, 2**32 - 1).astype(np.uint32),
        "any_never": bool((t[2] == 0).any()),
    }


def _with_probabilities(
    book: _Book, *, p_churn: ArrayLike, p_expand: ArrayLike, p_contract: ArrayLike
) -> _Book:
    """The same book (ARR and amounts already checked) under other event probabilities."""
    return replace(book, **_event_thresholds(p_churn, p_expand, p_contract, book.arr.size))


def _truncated_normal(rng: np.random.Generator, amounts: _Amounts, acct: IntArray) -> FloatArray:
    """Draws of N(mu, sigma) truncated to sign * x > 0, one per entry of `acct`."""
    cut = amounts.cut[acct]
    z = rng.standard_normal(acct.size, dtype=np.float32)
    above = amounts.sign > 0

    def wrong_side(values: np.ndarray, bounds: np.ndarray) -> npt.NDArray[np.bool_]:
        return values <= bounds if above else values >= bounds

    # rejection is exact and cheap where most of the mass lies on the right side ...
    bad = np.flatnonzero(wrong_side(z, cut))
    slow = np.flatnonzero(amounts.slow[acct]) if amounts.any_slow else bad[:0]
    if slow.size:
        bad = np.setdiff1d(bad, slow, assume_unique=True)
    for _ in range(_REJECTION_ROUNDS):
        if bad.size == 0:
            break
        z[bad] = rng.standard_normal(bad.size, dtype=np.float32)
        bad = bad[wrong_side(z[bad], cut[bad])]
    x = amounts.mu[acct] + amounts.sigma[acct] * z
    # ... and the inverse CDF takes the rest
    rest = np.concatenate([slow, bad])
    if rest.size:
        a = acct[rest]
        w = np.clip(1.0 - rng.random(rest.size), _TINY, 1.0 - _TINY)
        sign = amounts.sign
        x[rest] = amounts.mu[a] - sign * amounts.sigma[a] * ndtri(amounts.accept[a] * w)
    return x


@dataclass(frozen=True)
class _Events:
    """Events of one chunk, per kind: draw and account indices (and log ratios)."""

    churn: tuple[IntArray, IntArray]
    expand: tuple[IntArray, IntArray, FloatArray]
    contract: tuple[IntArray, IntArray, FloatArray]


def _draw_events(rng: np.random.Generator, book: _Book, n_draws: int) -> _Events:
    """All churn / expansion / contraction events of a chunk of draws."""
    n = book.arr.size
    size = n_draws * n
    u = np.asarray(rng.bit_generator.random_raw((size + 1) // 2)).view(np.uint32)[:size]
    t1, t2, t3 = book.thresholds
    # fast 32-bit pre-filter; it can only over-select where p = 0, checked exactly below
    flat = np.flatnonzero(u.reshape(n_draws, n) <= book.last_event)
    draw = flat // n
    acct = flat - draw * n
    uv = u[flat].astype(np.int64)
    if book.any_never:
        hit = uv < t3[acct]
        draw, acct, uv = draw[hit], acct[hit], uv[hit]
    churn = uv < t1[acct]
    up = ~churn & (uv < t2[acct])
    idx_c, idx_e = np.flatnonzero(churn), np.flatnonzero(up)
    idx_d = np.flatnonzero(~(churn | up))
    return _Events(
        churn=(draw[idx_c], acct[idx_c]),
        expand=(draw[idx_e], acct[idx_e], _truncated_normal(rng, book.expand, acct[idx_e])),
        contract=(draw[idx_d], acct[idx_d], _truncated_normal(rng, book.contract, acct[idx_d])),
    )


def _group_codes(groups: np.ndarray | None, n: int) -> tuple[IntArray, tuple[str, ...]]:
    if groups is None:
        return np.zeros(n, dtype=np.int64), ()
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {g.shape}")
    labels = pd.Series(g).astype("string")
    if labels.isna().any():
        raise ValueError("groups must not contain missing values")
    if (labels == POOLED).any():
        raise ValueError(f"'{POOLED}' is reserved for the pooled total; rename that group")
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.int64), tuple(str(u) for u in uniques)


def _check_draws(draws: int) -> None:
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")


def _chunks(draws: int, n: int) -> list[int]:
    _check_draws(draws)
    size = max(1, _CHUNK_ELEMENTS // n)
    return [min(size, draws - start) for start in range(0, draws, size)]


def _group_sum(
    draw: IntArray,
    acct: IntArray,
    amount: FloatArray,
    codes: IntArray | None,
    n_draws: int,
    n_groups: int,
) -> FloatArray:
    """Sum of event amounts per (draw, group): shape (n_draws, n_groups)."""
    index = draw if codes is None else draw * n_groups + codes[acct]
    sums = np.bincount(index, weights=amount, minlength=n_draws * n_groups)
    return np.asarray(sums, dtype=float).reshape(n_draws, n_groups)


def _run_chunks(
    work: Callable[[tuple[np.random.Generator, int]], T],
    seed: int,
    sizes: list[int],
    workers: int,
) -> list[T]:
    """Apply `work` to every chunk with its own spawned generator, in chunk order."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = list(zip(np.random.default_rng(seed).spawn(len(sizes)), sizes, strict=True))
    if workers == 1:
        return [work(job) for job in jobs]
    # numpy releases the GIL in the heavy loops, so threads use several cores
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(work, jobs))


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in quantiles)
    if not qs or any(not 0 < q < 1 for q in qs) or list(qs) != sorted(set(qs)):
        raise ValueError(f"quantiles must be strictly increasing in (0, 1), got {quantiles}")
    return qs


@dataclass(frozen=True)
class ForecastResult:
    """Per-draw totals (pooled group 'All' and per group) and their tidy summary."""

    draws: pd.DataFrame  # draw, group, starting_arr, flows, ending_arr, nrr, grr
    summary: pd.DataFrame  # group, metric, mean, p10, p50, p90 (one column per quantile)
    quantiles: tuple[float, ...]


def _with_pooled(per_group: FloatArray) -> FloatArray:
    return np.concatenate([per_group.sum(axis=-1, keepdims=True), per_group], axis=-1)


def _metrics(start: FloatArray, flows: FloatArray, ending: FloatArray, kept: FloatArray) -> dict:
    """Per-draw metric arrays (draws x groups) from starting ARR per group and the flows."""
    safe = np.where(start > 0, start, np.nan)
    return {
        "starting_arr": np.broadcast_to(start, ending.shape),
        "expansion_arr": flows[0],
        "contraction_arr": flows[1],
        "churned_arr": flows[2],
        "ending_arr": ending,
        "nrr": ending / safe,
        "grr": kept / safe,
    }


def _tidy(metrics: dict, labels: tuple[str, ...], quantiles: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    for metric, values in metrics.items():
        qs = np.quantile(values, quantiles, axis=0)
        for j, label in enumerate(labels):
            rows.append(
                {
                    "group": label,
                    "metric": metric,
                    "mean": float(np.mean(values[:, j])),
                    **{quantile_name(q): float(qs[i, j]) for i, q in enumerate(quantiles)},
                }
            )
    return pd.DataFrame(rows)


def _draws_frame(metrics: dict, labels: tuple[str, ...]) -> pd.DataFrame:
    n_draws = next(iter(metrics.values())).shape[0]
    frame = pd.DataFrame(
        {
            "draw": np.tile(np.arange(n_draws), len(labels)),
            "group": pd.array(np.repeat(labels, n_draws), dtype="string"),
        }
    )
    for metric, values in metrics.items():
        frame[metric] = np.asarray(values).T.ravel()
    return frame


def simulate_outcomes(
    *,
    arr: ArrayLike,
    p_churn: ArrayLike,
    p_expand: ArrayLike,
    p_contract: ArrayLike,
    expand_mu: ArrayLike,
    expand_sigma: ArrayLike,
    contract_mu: ArrayLike,
    contract_sigma: ArrayLike,
    groups: np.ndarray | None = None,
    draws: int = 10_000,
    seed: int,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    workers: int = 1,
    shock: RateShock | None = None,
) -> ForecastResult:
    """Distribution of next-horizon expansion, contraction, churn, ending ARR, NRR and GRR.

    Each chunk of draws has its own generator spawned from `seed`, so the result depends on
    the seed and the inputs only, not on `workers` (threads sharing the chunks). With an
    active `shock` the draws are split into its scenarios (see the module docstring).
    """
    qs = _check_quantiles(quantiles)
    book = _book(
        arr=arr,
        p_churn=p_churn,
        p_expand=p_expand,
        p_contract=p_contract,
        expand=(expand_mu, expand_sigma),
        contract=(contract_mu, contract_sigma),
    )
    parts = [
        _outcome_metrics(
            _with_probabilities(
                book,
                p_churn=shift_log_odds(p_churn, float(part.churn_shift[0])),
                p_expand=shift_log_odds(p_expand, float(part.expand_shift[0])),
                p_contract=p_contract,
            ),
            groups=groups,
            draws=part.size,
            seed=part.seed,
            workers=workers,
        )
        for part in _scenarios(shock, draws, seed)
    ]
    labels = parts[0][1]
    metrics = {k: np.concatenate([m[k] for m, _ in parts], axis=0) for k in parts[0][0]}
    return ForecastResult(_draws_frame(metrics, labels), _tidy(metrics, labels, qs), qs)


def _outcome_metrics(
    book: _Book, *, groups: np.ndarray | None, draws: int, seed: int, workers: int
) -> tuple[dict, tuple[str, ...]]:
    codes, names = _group_codes(groups, book.arr.size)
    n_groups = max(1, len(names))

    group_codes = codes if names else None

    def chunk(job: tuple[np.random.Generator, int]) -> FloatArray:
        rng, size = job
        events = _draw_events(rng, book, size)
        (dc, ac), (de, ae, xe), (dd, ad, xd) = events.churn, events.expand, events.contract
        arr = book.arr
        return np.stack(
            [
                _group_sum(de, ae, arr[ae] * np.expm1(xe), group_codes, size, n_groups),
                _group_sum(dd, ad, -arr[ad] * np.expm1(xd), group_codes, size, n_groups),
                _group_sum(dc, ac, arr[ac], group_codes, size, n_groups),
            ]
        )

    flows = np.concatenate(_run_chunks(chunk, seed, _chunks(draws, book.arr.size), workers), axis=1)
    start = np.asarray(np.bincount(codes, weights=book.arr, minlength=n_groups), dtype=float)
    if names:
        flows, start = _with_pooled(flows), _with_pooled(start)
    ending = start + flows[0] - flows[1] - flows[2]
    metrics = _metrics(start, flows, ending, start - flows[1] - flows[2])
    return metrics, (POOLED, *names)


def _truncated_exp_mean(mu: FloatArray, sigma: FloatArray, sign: float) -> FloatArray:
    """E[exp(X)] for X ~ N(mu, sigma) truncated to sign * X > 0."""
    safe = np.where(sigma > 0, sigma, 1.0)
    log_ratio = (
        mu + sigma**2 / 2 + log_ndtr(sign * (mu + sigma**2) / safe) - log_ndtr(sign * mu / safe)
    )
    return np.where(sigma > 0, np.exp(log_ratio), np.exp(mu))


def expected_totals(
    *,
    arr: ArrayLike,
    p_churn: ArrayLike,
    p_expand: ArrayLike,
    p_contract: ArrayLike,
    expand_mu: ArrayLike,
    expand_sigma: ArrayLike,
    contract_mu: ArrayLike,
    contract_sigma: ArrayLike,
) -> dict[str, float]:
    """Analytic expectation of the pooled totals that `simulate_outcomes` samples."""
    book = _book(
        arr=arr,
        p_churn=p_churn,
        p_expand=p_expand,
        p_contract=p_contract,
        expand=(expand_mu, expand_sigma),
        contract=(contract_mu, contract_sigma),
    )
    t1, t2, t3 = (t / _SCALE for t in book.thresholds)
    gain = _truncated_exp_mean(book.expand.mu, book.expand.sigma, 1.0) - 1.0
    loss = 1.0 - _truncated_exp_mean(book.contract.mu, book.contract.sigma, -1.0)
    out = {
        "starting_arr": float(book.arr.sum()),
        "expansion_arr": float((book.arr * (t2 - t1) * gain).sum()),
        "contraction_arr": float((book.arr * (t3 - t2) * loss).sum()),
        "churned_arr": float((book.arr * t1).sum()),
    }
    out["ending_arr"] = (
        out["starting_arr"] + out["expansion_arr"] - out["contraction_arr"] - out["churned_arr"]
    )
    return out


@dataclass(frozen=True)
class FanResult:
    """Per-quarter distribution of flows, ending ARR and cumulative NRR/GRR of the book."""

    summary: pd.DataFrame  # quarter, group, metric, mean, one column per quantile
    quantiles: tuple[float, ...]


def _per_quarter(name: str, values: ArrayLike, n: int, quarters: int) -> list[ArrayLike]:
    out = np.asarray(values, dtype=float)
    if out.ndim < 2:
        return [values] * quarters
    if out.shape != (n, quarters):
        raise ValueError(f"{name} must have shape ({n},) or ({n}, {quarters}), got {out.shape}")
    return [out[:, q] for q in range(quarters)]


def simulate_fan(
    *,
    arr: ArrayLike,
    p_churn: ArrayLike,
    p_expand: ArrayLike,
    p_contract: ArrayLike,
    expand_mu: ArrayLike,
    expand_sigma: ArrayLike,
    contract_mu: ArrayLike,
    contract_sigma: ArrayLike,
    quarters: int = 4,
    groups: np.ndarray | None = None,
    draws: int = 10_000,
    seed: int,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    workers: int = 1,
    shock: RateShock | None = None,
) -> FanResult:
    """Fan over the next quarters: each draw carries every account's ARR from quarter to quarter.

    Probabilities are per quarter: shape (n,) for the same every quarter or (n, quarters).
    Churned accounts stay churned and ARR compounds. `nrr` and `grr` are cumulative from the
    start (GRR caps each account at its starting ARR); `quarter_nrr` is the quarter's own.
    Deterministic for a seed whatever `workers` is, as in `simulate_outcomes`. A scenario of
    an active `shock` draws its shift per quarter as `RateShock.persistence` says.
    """
    qs = _check_quantiles(quantiles)
    if quarters < 1:
        raise ValueError(f"quarters must be >= 1, got {quarters}")
    start_arr = np.asarray(arr, dtype=float)
    n = start_arr.size
    per_q = {
        name: _per_quarter(name, values, n, quarters)
        for name, values in (
            ("p_churn", p_churn),
            ("p_expand", p_expand),
            ("p_contract", p_contract),
        )
    }
    codes, names = _group_codes(groups, n)
    n_groups = max(1, len(names))
    onehot = np.zeros((n, n_groups))
    onehot[np.arange(n), codes] = 1.0

    first = _book(
        arr=start_arr,
        p_churn=per_q["p_churn"][0],
        p_expand=per_q["p_expand"][0],
        p_contract=per_q["p_contract"][0],
        expand=(expand_mu, expand_sigma),
        contract=(contract_mu, contract_sigma),
    )

    def run(scenario: Scenario) -> list:
        books = [
            _with_probabilities(
                first,
                p_churn=shift_log_odds(per_q["p_churn"][q], float(scenario.churn_shift[q])),
                p_expand=shift_log_odds(per_q["p_expand"][q], float(scenario.expand_shift[q])),
                p_contract=per_q["p_contract"][q],
            )
            for q in range(quarters)
        ]

        def chunk(job: tuple[np.random.Generator, int]) -> tuple[FloatArray, ...]:
            return _fan_chunk(job[0], books, codes, onehot, job[1])

        return _run_chunks(chunk, scenario.seed, _chunks(scenario.size, n), workers)

    results = [
        part for scenario in _scenarios(shock, draws, seed, quarters) for part in run(scenario)
    ]
    # stacked per quarter: flows (3, draws, groups), ending and kept (draws, groups)
    flows = np.concatenate([r[0] for r in results], axis=2)
    ending = np.concatenate([r[1] for r in results], axis=1)
    kept = np.concatenate([r[2] for r in results], axis=1)
    start = np.asarray(np.bincount(codes, weights=start_arr, minlength=n_groups), dtype=float)
    if names:
        flows, ending, kept, start = (_with_pooled(x) for x in (flows, ending, kept, start))
    labels = (POOLED, *names)
    frames = []
    for q in range(quarters):
        opening = np.broadcast_to(start, ending[q].shape) if q == 0 else ending[q - 1]
        metrics = _metrics(start, flows[q], ending[q], kept[q])
        metrics["starting_arr"] = opening
        metrics["quarter_nrr"] = ending[q] / np.where(opening > 0, opening, np.nan)
        frames.append(_tidy(metrics, labels, qs).assign(quarter=q + 1))
    summary = pd.concat(frames, ignore_index=True)
    return FanResult(summary.loc[:, ["quarter", *summary.columns[:-1]]], qs)


def _fan_chunk(
    rng: np.random.Generator,
    books: list[_Book],
    codes: IntArray,
    onehot: FloatArray,
    size: int,
) -> tuple[FloatArray, ...]:
    """One chunk of draws through all quarters: flows, ending ARR and capped ARR per group."""
    start = books[0].arr
    state = np.tile(start, (size, 1))
    n_groups = onehot.shape[1]
    flows, ending, kept = [], [], []
    for book in books:
        events = _draw_events(rng, book, size)
        quarter = []
        # events of one chunk and quarter hit distinct (draw, account) cells
        for draw, acct, log_ratio in (events.expand, events.contract):
            before = state[draw, acct]
            state[draw, acct] = before * np.exp(log_ratio)
            change = np.abs(state[draw, acct] - before)
            quarter.append(_group_sum(draw, acct, change, codes, size, n_groups))
        draw, acct = events.churn
        quarter.append(_group_sum(draw, acct, state[draw, acct], codes, size, n_groups))
        state[draw, acct] = 0.0
        flows.append(np.stack(quarter))
        ending.append(state @ onehot)
        kept.append(np.minimum(state, start) @ onehot)
    return np.stack(flows), np.stack(ending), np.stack(kept)


def backtest_horizons(table: pd.DataFrame) -> pd.Series:
    """Each forecast-backtest row's horizon in quarters (tables written before horizons
    existed have no such column: all their rows are one quarter ahead)."""
    if "horizon" in table.columns:
        return table["horizon"].astype(int)
    return pd.Series(1, index=table.index)


def pinball_loss(actual: ArrayLike, quantile_preds: ArrayLike, quantiles: Sequence[float]) -> float:
    """Mean pinball (quantile) loss over observations and quantiles; lower is better."""
    y = np.asarray(actual, dtype=float).reshape(-1)
    preds = np.asarray(quantile_preds, dtype=float)
    qs = np.asarray(_check_quantiles(quantiles))
    if preds.ndim == 1 and y.size == 1:
        preds = preds.reshape(1, -1)
    if preds.shape != (y.size, qs.size):
        raise ValueError(f"quantile_preds must have shape ({y.size}, {qs.size}), got {preds.shape}")
    if not (np.isfinite(y).all() and np.isfinite(preds).all()):
        raise ValueError("pinball_loss needs finite actuals and predictions")
    diff = y[:, None] - preds
    return float(np.mean(np.maximum(qs * diff, (qs - 1) * diff)))


def interval_coverage(actual: ArrayLike, low: ArrayLike, high: ArrayLike) -> float:
    """Share of actuals inside their [low, high] interval (bounds inclusive)."""
    y, lo, hi = (np.asarray(x, dtype=float).reshape(-1) for x in (actual, low, high))
    if not (y.size == lo.size == hi.size) or y.size == 0:
        raise ValueError("actual, low and high must be non-empty and of equal length")
    if not (np.isfinite(y).all() and np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError("interval_coverage needs finite values")
    if (lo > hi).any():
        raise ValueError(f"low exceeds high in {int((lo > hi).sum())} interval(s)")
    return float(np.mean((y >= lo) & (y <= hi)))


def naive_forecast(
    history_by_quarter: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    group_col: str | None = "segment",
    window: int = 4,
    metric: str = "nrr",
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> pd.DataFrame:
    """Baseline: mean of the last `window` complete quarters' NRR, per group and pooled.

    The interval is normal around that mean with the quarters' standard deviation (NaN when
    fewer than two quarters are available). `history_by_quarter` is `nrr.decompose` output
    with freq="quarter" (and by=group_col for the groups); only quarters that ended on or
    before `as_of` are used. Rows: group ('All' when group_col is None), n_quarters,
    last_period, mean, sd, one column per quantile.
    """
    qs = _check_quantiles(quantiles)
    needed = ["period_end", metric, *([group_col] if group_col else [])]
    missing = [c for c in needed if c not in history_by_quarter.columns]
    if missing:
        raise ValueError(f"history_by_quarter is missing column(s) {missing}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    seen = history_by_quarter[history_by_quarter["period_end"] <= as_of]
    seen = seen[seen[metric].notna()].sort_values("period_end")
    keyed = seen.assign(_group=seen[group_col] if group_col else POOLED)
    rows = []
    for label, part in keyed.groupby("_group", sort=True):
        values = part[metric].to_numpy(dtype=float)[-window:]
        mean = float(values.mean())
        sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
        row = {
            "group": str(label),
            "n_quarters": int(values.size),
            "last_period": part["period_end"].iloc[-1],
            "mean": mean,
            "sd": sd,
        }
        row.update({quantile_name(q): mean + sd * float(ndtri(q)) for q in qs})
        rows.append(row)
    columns = ["group", "n_quarters", "last_period", "mean", "sd", *map(quantile_name, qs)]
    return pd.DataFrame(rows, columns=columns)
