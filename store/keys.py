"""API keys: roles and source scopes, stored hashed beside the store's data.

A key is ``cdr_<id>_<secret>``; only the SHA-256 of the whole key is kept, in
``access/keys.json`` (written atomically under the writer lock). The secret is 256 random
bits, so a fast hash is enough (no password stretching), and comparisons are in constant
time. A key names its role (``analyst`` or ``admin``) and, optionally, the sources it may
read; without scopes it reads every source.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from store.errors import StoreError
from store.snapshots import fsync_dir

ACCESS = "access"
KEYS_FILE = "keys.json"
KEYS = f"{ACCESS}/{KEYS_FILE}"  # relative to the store root
_PREFIX = "cdr"


class Role(StrEnum):
    """Who is asking: anyone (no key), an analyst, or an administrator."""

    public = "public"
    analyst = "analyst"
    admin = "admin"


@dataclass(frozen=True)
class ApiKey:
    """A stored key: never the key itself, only its hash."""

    id: str
    role: Role
    scopes: tuple[str, ...]
    created_at: str
    sha256: str
    revoked_at: str | None = None
    note: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


class KeyRing:
    """The keys of one store."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root) / ACCESS / KEYS_FILE

    def keys(self) -> list[ApiKey]:
        """Every key ever created, revoked ones included, oldest first."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        # Read again only when the file changed (a revoke takes effect at once).
        return list(_load(str(self.path), stat.st_mtime_ns, stat.st_size))

    def create(
        self, role: Role, scopes: tuple[str, ...] = (), note: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key; returns its record and the key text (shown once, never stored)."""
        if role is Role.public:
            raise StoreError("public access needs no key; create analyst or admin keys")
        for scope in scopes:
            if not scope or not scope.replace("-", "").replace("_", "").isalnum():
                raise StoreError(f"scope {scope!r} is not a source name")
        key_id = secrets.token_hex(4)
        text = f"{_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(
            id=key_id,
            role=role,
            scopes=tuple(sorted(set(scopes))),
            created_at=_now(),
            sha256=_digest(text),
            note=note,
        )
        self._write([*self.keys(), record])
        return record, text

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id; StoreError if there is no such active key."""
        keys = self.keys()
        for i, k in enumerate(keys):
            if k.id == key_id:
                if not k.active:
                    raise StoreError(f"key {key_id} was already revoked at {k.revoked_at}")
                keys[i] = replace(k, revoked_at=_now())
                self._write(keys)
                return keys[i]
        raise StoreError(f"no key {key_id!r} (see `cuadra keys list`)")

    def authenticate(self, text: str) -> ApiKey | None:
        """The active key whose text this is, or None."""
        parts = text.split("_", 2)
        if len(parts) != 3 or parts[0] != _PREFIX:
            return None
        digest = _digest(text)
        found = None
        for k in self.keys():
            # Compare every candidate in constant time; ids are not secret.
            if k.id == parts[1] and hmac.compare_digest(k.sha256, digest):
                found = k
        return found if found is not None and found.active else None

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": [asdict(k) for k in keys]}, indent=1, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        finally:
            Path(tmp).unlink(missing_ok=True)


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> tuple[ApiKey, ...]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(
        ApiKey(**{**k, "role": Role(k["role"]), "scopes": tuple(k["scopes"])}) for k in raw["keys"]
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
