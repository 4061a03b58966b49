"""API keys: created once, stored salted and scrypt-hashed, checked in constant time.

A key reads `nrr_<key_id>_<secret>`. The key id only selects the stored record (it is
not secret); the secret is verified with scrypt and `hmac.compare_digest`. Because
scrypt costs tens of milliseconds by design, a verified key is remembered in memory
(by its SHA-256 digest, never in clear) so steady traffic pays the hash once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

Role = Literal["reader", "admin"]
ROLES: tuple[Role, ...] = ("reader", "admin")
_PREFIX = "nrr"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_CACHE_LIMIT = 10_000


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


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)


def new_key(role: Role, *, note: str = "") -> tuple[str, StoredKey]:
    """A fresh key in clear (shown once) and its stored, hashed record."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    record = StoredKey(
        key_id=key_id,
        role=role,
        salt=salt.hex(),
        hash=_scrypt(secret, salt).hex(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        note=note,
    )
    return f"{_PREFIX}_{key_id}_{secret}", record


def read_keys(path: Path) -> list[StoredKey]:
    """The stored keys of a keys file; a missing file holds no keys."""
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text())
        records = [StoredKey(**item) for item in raw["keys"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"API keys file {path} is malformed: {exc}") from exc
    bad = [r.key_id for r in records if r.role not in ROLES]
    if bad:
        raise KeyFileError(f"API keys file {path}: unknown role for key(s) {', '.join(bad)}")
    return records


def append_key(path: Path, record: StoredKey) -> None:
    """Add one record to the keys file, written atomically and readable by the owner only."""
    records = read_keys(path) + [record]
    payload = {"keys": [r.__dict__ for r in records]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


class KeyStore:
    """Verifies presented keys against the stored records."""

    def __init__(self, records: list[StoredKey]) -> None:
        self._by_id = {r.key_id: r for r in records}
        self._verified: dict[bytes, Role] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def cached_role(self, presented: str | None) -> Role | None:
        """The role of a key already verified (microseconds, no scrypt); None otherwise."""
        if not presented:
            return None
        return self._verified.get(hashlib.sha256(presented.encode()).digest())

    def role_of(self, presented: str | None) -> Role | None:
        """The role of a valid key, None for a missing, malformed or wrong one."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        cached = self._verified.get(digest)
        if cached is not None:
            return cached
        role = self._verify(presented)
        if role is not None and len(self._verified) < _CACHE_LIMIT:
            self._verified[digest] = role
        return role

    def _verify(self, presented: str) -> Role | None:
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != _PREFIX:
            return None
        record = self._by_id.get(parts[1])
        if record is None:
            return None
        candidate = _scrypt(parts[2], bytes.fromhex(record.salt))
        if hmac.compare_digest(candidate, bytes.fromhex(record.hash)):
            return cast(Role, record.role)
        return None


def allows(role: Role | None, needed: Role) -> bool:
    """Admins may do everything readers may."""
    return role == "admin" or (role == needed == "reader")
