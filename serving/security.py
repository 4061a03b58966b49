"""API keys: random 256-bit secrets stored as a SHA-256 digest, checked in constant time,
with repeated failures throttled per client and per key id.

A key reads `nrr_<key_id>_<secret>`. The key id only selects the stored record (it is not
secret); the secret is 32 random bytes, so a fast hash is as safe to store as a slow one
and costs an unauthenticated request microseconds, not the ~25 ms of CPU scrypt did (see
docs/SECURITY.md). Records written before that (no `scheme`, scrypt) still work: the first
success verifies one with scrypt and from then on the process checks that key id with
SHA-256; only a budget of scrypt runs is ever spent on secrets not yet verified.

A correct key is never refused by the throttle (the check costs less than the refusal, and
a throttle that refused correct keys would let anyone who knows a key id lock its owner
out); wrong keys past the limit get 429 with Retry-After, and `Tarpit` holds those answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

log = logging.getLogger(__name__)

Role = Literal["reader", "admin"]
ROLES: tuple[Role, ...] = ("reader", "admin")
Scheme = Literal["sha256", "scrypt"]
SCHEMES: tuple[Scheme, ...] = ("sha256", "scrypt")
Reason = Literal["ok", "missing", "malformed", "unknown_key", "wrong_secret", "not_verified"]
Scope = Literal["", "client", "key", "slow_path"]

_PREFIX = "nrr"
_DOMAIN = b"nrr-api-key-v2\x00"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MAX_SECRET_CHARS = 128  # keys carry 43; longer input is malformed, not hashed

# Throttle defaults: failures allowed per window before 429, the scrypt budget, the hold.
CLIENT_FAILURES = 20
KEY_FAILURES = 10
WINDOW_SECONDS = 60.0
SLOW_PER_SECOND = 4.0  # at most ~10% of a core on legacy scrypt checks, whoever asks
SLOW_BURST = 8
MAX_CLIENTS = 50_000
TARPIT_SECONDS = 1.0
TARPIT_MAX_HELD = 512


class KeyFileError(ValueError):
    """The API keys file is unreadable or malformed."""


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    role: Role
    salt: str
    hash: str
    created_at: str
    note: str = ""
    # Files written before schemes existed hold scrypt records without this field.
    scheme: Scheme = "scrypt"


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)


def _digest(key_id: str, secret: str) -> bytes:
    """The stored form of a key: SHA-256 of the whole key under a domain tag."""
    return hashlib.sha256(_DOMAIN + f"{key_id}:{secret}".encode()).digest()


def new_key(role: Role, *, note: str = "") -> tuple[str, StoredKey]:
    """A fresh key in clear (shown once) and its stored, hashed record."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    record = StoredKey(
        key_id=key_id,
        role=role,
        salt="",
        hash=_digest(key_id, secret).hex(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        note=note,
        scheme="sha256",
    )
    return f"{_PREFIX}_{key_id}_{secret}", record


def read_keys(path: Path) -> list[StoredKey]:
    """The stored keys of a keys file; a missing file holds no keys."""
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text())
        records = [StoredKey(**item) for item in raw["keys"]]
        for r in records:
            bytes.fromhex(r.hash), bytes.fromhex(r.salt)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"API keys file {path} is malformed: {exc}") from exc
    bad = [r.key_id for r in records if r.role not in ROLES]
    if bad:
        raise KeyFileError(f"API keys file {path}: unknown role for key(s) {', '.join(bad)}")
    bad = [r.key_id for r in records if r.scheme not in SCHEMES]
    if bad:
        raise KeyFileError(f"API keys file {path}: unknown scheme for key(s) {', '.join(bad)}")
    return records


def legacy_count(records: list[StoredKey]) -> int:
    """How many records are scrypt records written before SHA-256 (they still work)."""
    return sum(r.scheme == "scrypt" for r in records)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `path` (`<file>.lock`): two `nrr apikey` commands at
    once must not lose one another's change (nor two workers a reload generation:
    serving.replicas). POSIX only; elsewhere no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_key_file(path: Path, records: list[StoredKey]) -> None:
    """Write the keys file atomically (a new file renamed over the old one: a server never
    reads half a file, and the new inode tells its watcher), readable by the owner only."""
    payload = {"keys": [r.__dict__ for r in records]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


def append_key(path: Path, record: StoredKey) -> None:
    """Add one record to the keys file."""
    with locked(path):
        write_key_file(path, read_keys(path) + [record])


def remove_key(path: Path, key_id: str) -> StoredKey:
    """Remove the record of `key_id` from the keys file and return it; KeyError if unknown."""
    with locked(path):
        records = read_keys(path)
        found = [r for r in records if r.key_id == key_id]
        if not found:
            raise KeyError(key_id)
        write_key_file(path, [r for r in records if r.key_id != key_id])
    return found[0]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one presented key: a role, or why not and whether to answer 429."""

    role: Role | None
    reason: Reason
    retry_after: int = 0  # > 0: answer 429 with this Retry-After (seconds)
    throttled: Scope = ""  # which limit the 429 is for
    slow: bool = False  # a legacy scrypt check ran for this request


class FailureWindow:
    """Failures per subject in fixed windows: after `limit` in `window` s it is blocked
    until that window ends. Bounded: the oldest windows go first when `max_subjects` are held.
    Not thread-safe; `KeyStore` holds a lock around it.
    """

    def __init__(self, limit: int, window: float, max_subjects: int) -> None:
        self.limit, self.window, self.max_subjects = limit, window, max_subjects
        # subject -> [window start, failures]; insertion order is window-start order.
        self._entries: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, subject: str, now: float) -> float:
        """Seconds until `subject` may fail again without 429; 0 when it is not blocked."""
        entry = self._entries.get(subject)
        if entry is None or now - entry[0] >= self.window or entry[1] < self.limit:
            return 0.0
        return entry[0] + self.window - now

    def fail(self, subject: str, now: float) -> bool:
        """Count one failure; True when it is the one that reaches the limit."""
        entry = self._entries.get(subject)
        if entry is None or now - entry[0] >= self.window:
            self._entries.pop(subject, None)
            self._prune(now)
            entry = self._entries[subject] = [now, 0]
        entry[1] += 1
        return entry[1] == self.limit

    def _prune(self, now: float) -> None:
        while self._entries:
            subject, (start, _) = next(iter(self._entries.items()))
            if now - start < self.window and len(self._entries) < self.max_subjects:
                return
            del self._entries[subject]


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take` answers the wait when none is left."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._last = float(burst), now

    def take(self, now: float) -> float:
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


class Tarpit:
    """Holds 429 answers `delay` s (a timer: no CPU, no thread) before they are sent.

    A client that waits for each answer then sends at most connections / delay attempts a
    second instead of as many as the server can refuse. At most `max_held` answers are held
    at once; past that they go out at once (the bound on what holding may cost in memory).
    Event-loop only: never from a threadpool worker, which it would occupy.
    """

    def __init__(self, delay: float = TARPIT_SECONDS, max_held: int = TARPIT_MAX_HELD) -> None:
        self.delay, self.max_held = delay, max_held
        self.held = 0

    async def hold(self, retry_after: float) -> None:
        if self.held >= self.max_held or self.delay <= 0:
            return
        self.held += 1
        try:
            await asyncio.sleep(min(self.delay, retry_after))
        finally:
            self.held -= 1


def _parse(presented: str) -> tuple[str, str] | None:
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[2]:
        return None
    if len(parts[2]) > _MAX_SECRET_CHARS:
        return None
    return parts[1], parts[2]


class KeyStore:
    """Verifies presented keys against the stored records and throttles repeated failures."""

    def __init__(
        self,
        records: list[StoredKey],
        *,
        client_failures: int = CLIENT_FAILURES,
        key_failures: int = KEY_FAILURES,
        window: float = WINDOW_SECONDS,
        slow_per_second: float = SLOW_PER_SECOND,
        slow_burst: int = SLOW_BURST,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
        tarpit: Tarpit | None = None,
    ) -> None:
        # (key id -> record, key id -> SHA-256 digest of its key): the digests of the records
        # stored that way, and of legacy records once one request proved their secret (never
        # a failure: see SECURITY.md). One tuple, swapped whole by `replace_records`.
        self._index: tuple[dict[str, StoredKey], dict[str, bytes]] = _index(records, {}, {})
        self._clock = clock
        self._lock = threading.Lock()
        self._clients = FailureWindow(client_failures, window, max_clients)
        self._keys = FailureWindow(key_failures, window, max(1, len(records)))
        self._slow_budget = TokenBucket(slow_per_second, slow_burst, clock())
        self.tarpit = tarpit or Tarpit()
        self.slow_verifications = 0  # scrypt runs, for tests and the benchmark
        legacy = legacy_count(records)
        if legacy:
            log.warning(
                "%d API key(s) are legacy scrypt records: each costs one scrypt check per "
                "process start, and under a flood of wrong secrets it may get 429 until "
                "it has been used once; replace them with `nrr apikey create` "
                "(docs/RUNBOOK.md, 'Rotating an API key')",
                legacy,
            )

    def __len__(self) -> int:
        return len(self._index[0])

    def replace_records(self, records: list[StoredKey]) -> None:
        """Serve these records from now on (the keys file changed), keeping the throttle's
        windows and, for legacy records left unchanged, their proof: a rotation costs no
        scrypt for the keys it kept, and removed keys fail from the next request on."""
        by_id, fast = self._index
        fresh = _index(records, by_id, fast)
        with self._lock:
            self._keys.max_subjects = max(1, len(records))
            self._index = fresh

    def needs_slow_path(self, presented: str | None) -> bool:
        """True when checking `presented` may run scrypt: a legacy key id not yet proven."""
        parsed = _parse(presented) if presented else None
        by_id, fast = self._index
        return parsed is not None and parsed[0] in by_id and parsed[0] not in fast

    def role_of(self, presented: str | None, client: str | None = None) -> Role | None:
        """The role of a valid key, None for a missing, malformed, wrong or throttled one."""
        return self.authenticate(presented, client).role

    def authenticate(self, presented: str | None, client: str | None = None) -> Verdict:
        """Check a presented key from `client` (an address; None = not tracked)."""
        if not presented:
            return Verdict(None, "missing")
        parsed = _parse(presented)
        if parsed is None:
            # Not an attempt at a key (a missing prefix, another scheme's token, a typo):
            # refused for the cost of a split and, like a missing key, not throttled.
            log.debug("API key refused (malformed) for client %r", client)
            return Verdict(None, "malformed")
        key_id, secret = parsed
        by_id, fast = self._index
        record = by_id.get(key_id)
        if record is None:
            return self._failed("unknown_key", client, None)
        known = fast.get(key_id)
        if known is not None:
            if hmac.compare_digest(_digest(key_id, secret), known):
                return Verdict(cast(Role, record.role), "ok")
            return self._failed("wrong_secret", client, key_id)
        return self._legacy(record, secret, client, fast)

    def _legacy(
        self, record: StoredKey, secret: str, client: str | None, fast: dict[str, bytes]
    ) -> Verdict:
        with self._lock:
            now = self._clock()
            wait, scope = self._blocked(client, record.key_id, now)
            if not wait:
                wait, scope = self._slow_budget.take(now), "slow_path"
            if wait:
                return Verdict(None, "not_verified", math.ceil(wait), scope)
            self.slow_verifications += 1
        candidate = _scrypt(secret, bytes.fromhex(record.salt))
        if not hmac.compare_digest(candidate, bytes.fromhex(record.hash)):
            return replace(self._failed("wrong_secret", client, record.key_id), slow=True)
        first = record.key_id not in fast
        # Into the index the record came from: after a replace_records it is dropped.
        fast[record.key_id] = _digest(record.key_id, secret)
        if first:
            log.info(
                "API key %s (legacy scrypt record) verified; checked with SHA-256 from now "
                "on in this process. Replace it: docs/RUNBOOK.md, 'Rotating an API key'",
                record.key_id,
            )
        return Verdict(cast(Role, record.role), "ok", slow=True)

    def _blocked(self, client: str | None, key_id: str | None, now: float) -> tuple[float, Scope]:
        if client is not None:
            wait = self._clients.retry_after(client, now)
            if wait:
                return wait, "client"
        if key_id is not None:
            wait = self._keys.retry_after(key_id, now)
            if wait:
                return wait, "key"
        return 0.0, ""

    def _failed(self, reason: Reason, client: str | None, key_id: str | None) -> Verdict:
        """Count a failure against the client and the (known) key id; 429 once over a limit.

        The presented key is never logged; the key id only when it is a stored one (an
        unknown id is attacker-chosen text), the client as repr (no log injection).
        """
        with self._lock:
            now = self._clock()
            wait, scope = self._blocked(client, key_id, now)
            client_full = client is not None and self._clients.fail(client, now)
            key_full = key_id is not None and self._keys.fail(key_id, now)
        if client_full:
            log.warning(
                "API key: %d failed attempts from client %r within %.0f s; its failures get "
                "429 until the window ends (correct keys still pass)",
                self._clients.limit,
                client,
                self._clients.window,
            )
        if key_full:
            log.warning(
                "API key: %d failed attempts for key id %s within %.0f s; its failures get 429 "
                "until the window ends (the id is not secret; rotate the key if its secret "
                "may have leaked: docs/RUNBOOK.md)",
                self._keys.limit,
                key_id,
                self._keys.window,
            )
        if wait:
            return Verdict(None, reason, math.ceil(wait), scope)
        log.info(
            "API key refused (%s) for client %r%s",
            reason,
            client,
            f", key id {key_id}" if key_id else "",
        )
        return Verdict(None, reason)


def _index(
    records: list[StoredKey], old_by_id: dict[str, StoredKey], old_fast: dict[str, bytes]
) -> tuple[dict[str, StoredKey], dict[str, bytes]]:
    """The lookup tables of `KeyStore` for `records`; proven legacy digests of records that
    did not change carry over from the old tables."""
    by_id = {r.key_id: r for r in records}
    fast = {r.key_id: bytes.fromhex(r.hash) for r in records if r.scheme == "sha256"}
    for key_id, record in by_id.items():
        if record.scheme != "sha256" and old_by_id.get(key_id) == record and key_id in old_fast:
            fast[key_id] = old_fast[key_id]
    return by_id, fast


def allows(role: Role | None, needed: Role) -> bool:
    """Admins may do everything readers may."""
    return role == "admin" or (role == needed == "reader")
