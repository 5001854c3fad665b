"""Who is asking: the role and source scope behind a request's API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import AuthError, ForbiddenError
from store.keys import KeyRing, Role

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")


@dataclass(frozen=True)
class Principal:
    """The requester: public (no key) or the holder of an analyst or admin key."""

    role: Role
    scopes: tuple[str, ...] = ()  # sources the key may read; empty: all
    key_id: str | None = None

    @property
    def public(self) -> bool:
        """No key: aggregates only, under the privacy rules."""
        return self.role is Role.public

    def require_key(self, why: str) -> None:
        """Refuse (403) a request without an analyst or admin key, saying ``why``."""
        if self.public:
            raise ForbiddenError(why)


PUBLIC = Principal(Role.public)


async def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    header: Annotated[str | None, Security(_header)] = None,
) -> Principal:
    """The request's principal; 401 for a key that is unknown or revoked."""
    text = bearer.credentials if bearer is not None else header
    if not text:
        return PUBLIC
    ring: KeyRing = request.app.state.keys
    key = ring.authenticate(text)
    if key is None:
        raise AuthError("unknown or revoked API key")
    return Principal(key.role, key.scopes, key.id)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
