"""The one place that builds the FastAPI app."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.book import Book
from api.context import LEFT_OUT_HEADER
from api.errors import add_exception_handlers
from api.privacy import rules_from_settings
from api.ratelimit import RateLimit
from api.routes import (
    aggregates,
    area,
    concentration,
    emerging,
    hotspots,
    incidents,
    layers,
    maps,
    meta,
    nearrepeat,
    pages,
    places,
    reports,
    snapshots,
    subscriptions,
    tiles,
)
from api.settings import ServerSettings
from publication import tables
from store import Store
from store.engine import open_engine
from store.keys import KeyRing

log = logging.getLogger("cuadra.api")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the app for a store; tests call this with their own settings."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = Store(settings.store)
        app.state.keys = KeyRing(settings.store)
        app.state.alerts = Book(settings.store)
        app.state.rules = rules_from_settings(settings)
        app.state.settings = settings
        # One query engine for the app; each request takes its own cursor (a connection
        # is not thread-safe, and FastAPI runs sync routes in a thread pool).
        app.state.engine = open_engine(threads=2)
        try:
            yield
        finally:
            app.state.engine.close()
            tables.shutdown()

    app = FastAPI(
        title="Cuadra",
        summary="Georeferenced crime aggregates, hotspots and tiles from an H3-indexed store.",
        version=version("cuadra"),
        lifespan=lifespan,
        # /docs and /redoc are served with their assets from /static (api/routes/pages.py).
        docs_url=None,
        redoc_url=None,
    )
    add_exception_handlers(app)
    app.include_router(meta.router)
    app.include_router(snapshots.router)
    app.include_router(aggregates.router)
    app.include_router(incidents.router)
    app.include_router(hotspots.router)
    app.include_router(emerging.router)
    app.include_router(nearrepeat.router)
    app.include_router(concentration.router)
    app.include_router(tiles.router)
    app.include_router(layers.router)
    app.include_router(places.router)
    app.include_router(area.router)
    app.include_router(maps.router)
    app.include_router(reports.router)
    app.include_router(subscriptions.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    if not (pages.VENDOR / "leaflet" / "leaflet.js").exists():
        logging.getLogger("cuadra").warning(
            "Leaflet is missing from %s: /map and /embed need `make assets`", pages.VENDOR
        )

    _anonymous_allowed(app)
    app.add_middleware(
        RateLimit,
        public=settings.rate_public,
        keyed=settings.rate_keyed,
        keys=KeyRing(settings.store),
        tiles=settings.rate_tiles,
        in_flight=settings.rate_public_in_flight,
        storage=settings.redis_url,
    )
    if settings.cors_origins:
        # Embeds on other sites: read-only GETs, the ETag readable for their caches.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-API-Key", "If-None-Match"],
            expose_headers=["ETag", "X-Cuadra-Snapshot", LEFT_OUT_HEADER],
            max_age=600,
        )
    # Pure ASGI, not @app.middleware: BaseHTTPMiddleware adds a fixed cost to every
    # request (benchmarks/RESULTS.md, "Figures behind settings").
    app.add_middleware(KeyedNotShared)
    app.add_middleware(RequestLog)

    return app


KEY_REQUIRED = "x-key-required"


def _anonymous_allowed(app: FastAPI) -> None:
    """Declare keys optional in the schema: without one, a request is answered as public.

    FastAPI lists a route's key schemes as required; an empty requirement (``{}``) beside
    them is OpenAPI's way of saying "or none".
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    security = operation.get("security")
                    # Routes for keys only say so with x-key-required (see incidents).
                    if operation.pop(KEY_REQUIRED, False):
                        continue
                    if security and {} not in security:
                        operation["security"] = [{}, *security]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_KEY_HEADERS = (b"authorization", b"x-api-key")


class KeyedNotShared:
    """Exact figures never enter a shared cache.

    Every response varies by the key headers; a response to a request with a key is
    ``Cache-Control: private, no-store`` unless its route already made it private.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; mark its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        keyed = any(name in _KEY_HEADERS for name, _ in scope.get("headers", ()))

        async def mark(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"vary"]
                vary = [v for k, v in message.get("headers", ()) if k == b"vary"]
                headers.append((b"vary", b", ".join([*vary, b"Authorization, X-API-Key"])))
                control = [v for k, v in headers if k == b"cache-control"]
                if keyed and not (control and control[0].startswith(b"private")):
                    headers = [(k, v) for k, v in headers if k != b"cache-control"]
                    headers.append((b"cache-control", b"private, no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, mark)


class RequestLog:
    """One structured (JSON) log record per HTTP request, whatever the log handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; log it when the response is done."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "snapshot": None}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for key, value in message.get("headers", ()):
                    if key == b"x-cuadra-snapshot":
                        seen["snapshot"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    json.dumps(
                        {
                            "event": "request",
                            "method": scope["method"],
                            "path": scope["path"],
                            "query": scope["query_string"].decode("latin-1"),
                            **seen,
                            "ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                        ensure_ascii=False,
                    )
                )
