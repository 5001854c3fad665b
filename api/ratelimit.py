"""Rate limits per API key and per client address (SPEC §6), with 429 and Retry-After.

A pure ASGI middleware over the ``limits`` library's moving-window limiter, in memory
(one process) or in Redis (every process of a deployment). Requests with a valid key count
against the key; all others against the client's address, so that made-up keys cannot
escape the address's limit. While Redis cannot be reached, each process counts its own
(and says so in its log) rather than failing every request.

An address also has a cap on requests in flight (tiles apart): its requests beyond it
are refused at once, before they take a thread, so that one client's crowd of
concurrent requests cannot hold the interpreter while other clients wait (issue #20:
45 concurrent series within the rate limit made another client's /v1/meta wait).
"""

from __future__ import annotations

import logging
import math
import time

import orjson
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from store.keys import KeyRing

log = logging.getLogger("cuadra.api")

EXEMPT = ("/health",)
# After Redis fails, the process counts in memory for this long before trying it again.
REDIS_RETRY_SECONDS = 5.0
EXEMPT_PREFIXES = ("/static/",)  # Leaflet and our script: files, not queries
TILE_PREFIX = "/v1/tiles/"  # a map view asks for dozens of tiles at once: their own limit


class RateLimit:
    """Refuse requests beyond ``public`` (per address) or ``keyed`` (per key) limits."""

    def __init__(
        self,
        app: ASGIApp,
        public: str,
        keyed: str,
        keys: KeyRing,
        tiles: str = "1200/minute",
        in_flight: int = 4,
        storage: str | None = None,
    ) -> None:
        self.app = app
        self.in_flight = in_flight
        self.flying: dict[str, int] = {}  # the event loop's thread alone touches it
        self.public: RateLimitItem = parse(public)
        self.keyed: RateLimitItem = parse(keyed)
        self.tiles: RateLimitItem = parse(tiles)
        self.keys = keys
        # Redis (``redis://``) shares the counts among every process of a deployment;
        # otherwise each process counts its own.
        store = (
            storage_from_string(storage, socket_connect_timeout=0.5, socket_timeout=0.5)
            if storage
            else MemoryStorage()
        )
        self.limiter = MovingWindowRateLimiter(store)
        self.local = MovingWindowRateLimiter(MemoryStorage()) if storage else self.limiter
        self.shared_down_until = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request; answer 429 when its key or address is over its limit."""
        path = scope.get("path", "")
        if scope["type"] != "http" or path in EXEMPT or path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        item, who = self._identify(scope)
        if path.startswith(TILE_PREFIX):
            item, who = self.tiles, f"tiles:{who}"
        capped = who.startswith("addr:")  # keys and tiles are not capped
        if capped:
            if self.flying.get(who, 0) >= self.in_flight:
                await _refuse(
                    send,
                    1,
                    f"more than {self.in_flight} requests at once from one address; retry in 1 s",
                )
                return
            self.flying[who] = self.flying.get(who, 0) + 1
        try:
            limiter = self._limiter()
            try:
                allowed = limiter.hit(item, who)
            except Exception as exc:  # Redis unreachable: count here until it is back
                self._shared_failed(exc)
                limiter = self.local
                allowed = limiter.hit(item, who)
            if allowed:
                await self.app(scope, receive, send)
                return
        finally:
            if capped:
                self.flying[who] -= 1
                if not self.flying[who]:
                    del self.flying[who]
        reset = limiter.get_window_stats(item, who).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        await _refuse(send, retry, f"more than {item} requests; retry in {retry} s")

    def _limiter(self) -> MovingWindowRateLimiter:
        """The shared limiter, or this process's own while the shared one is failing."""
        return self.local if time.monotonic() < self.shared_down_until else self.limiter

    def _shared_failed(self, exc: Exception) -> None:
        if self.limiter is self.local:
            raise exc  # an in-memory limiter does not fail
        self.shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.warning(
            "rate limits: Redis unreachable (%s); counting in this process for %.0f s",
            exc,
            REDIS_RETRY_SECONDS,
        )

    def _identify(self, scope: Scope) -> tuple[RateLimitItem, str]:
        headers = dict(scope.get("headers", ()))
        text = headers.get(b"x-api-key", b"").decode("latin-1")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer ":
            text = auth[7:].strip()
        if text:
            key = self.keys.authenticate(text)
            if key is not None:
                return self.keyed, f"key:{key.id}"
        client = scope.get("client")
        return self.public, f"addr:{client[0] if client else 'unknown'}"


async def _refuse(send: Send, retry: int, message: str) -> None:
    """Answer 429 with Retry-After."""
    body = orjson.dumps({"error": "rate_limited", "message": message})
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(retry).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
