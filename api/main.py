"""The one place that builds the FastAPI app."""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
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
from store.objects import local_root

log = logging.getLogger("cuadra.api")


def create_app(settings: ServerSettings | None = None, *, serving: bool = False) -> FastAPI:
    """Build the app for a store; tests call this with their own settings.

    ``serving``: built by `cuadra serve` (api/processes.py), whose every process warms the
    public release on start when the settings say so (a test's app builds none unasked).
    """
    settings = settings or ServerSettings()

    app = FastAPI(
        title="Cuadra",
        summary="Georeferenced crime aggregates, hotspots and tiles from an H3-indexed store.",
        version=version("cuadra"),
        lifespan=_lifespan(settings, warm_release=serving and settings.warm_release),
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
        keys=KeyRing(local_root(settings.store)),
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


def _warm_release(store: Store, settings: ServerSettings) -> None:
    """Build (or read) the public release of every published year, in a thread."""
    from publication.figures import today

    def run() -> None:
        try:
            tables.warm(store, rules_from_settings(settings), today())
        except Exception:  # a failed warm-up only means slower first answers
            log.exception("warming the public release failed")

    threading.Thread(target=run, name="cuadra-warm", daemon=True).start()


def _prepare_each_snapshot(store: Store, engine: Any) -> ThreadPoolExecutor:
    """Prepare each new current snapshot in the background, one at a time (store/warm.py).

    Its first asks then find the offense list, the summary and the span cubes built; one
    asked meanwhile waits for the span cube it needs rather than building another.
    """
    from store import warm

    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cuadra-prepare")

    def prepare(snap: Any) -> None:
        def run() -> None:
            cursor = engine.cursor()
            try:
                warm.prepare(snap, cursor)
            except Exception:
                log.exception("preparing snapshot %s failed", snap.id)
            finally:
                cursor.close()

        worker.submit(run)

    store.on_new_snapshot = prepare
    if store.manifest() is not None:
        store.snapshot()  # the current one, prepared from the start
    return worker


# Imported by a few routes only (the map pages; comparisons, hot spots and alerts), and
# three quarters of a second of a process's start together.
DEFERRED_IMPORTS = ("folium", "scipy.stats")


def warm_process(app: FastAPI) -> None:
    """Build what a new process's first requests would otherwise pay for.

    FastAPI builds an included router's routes on the first request that passes through it
    (a fifth of a second for ours); the OpenAPI schema builds them all. Then the deferred
    imports, in the order a map asks for them. `cuadra serve` runs it before listening
    (with workers, once in their parent: api/processes.py); any other app's lifespan runs
    it in a thread.
    """
    app.openapi()
    for name in DEFERRED_IMPORTS:
        importlib.import_module(name)
    app.state.warm = True


def _warm_in_background(app: FastAPI) -> None:
    """``warm_process`` in a thread, unless done already: the process answers meanwhile."""
    if getattr(app.state, "warm", False):
        return

    def run() -> None:
        try:
            warm_process(app)
        except Exception:  # only slower first answers
            log.exception("warming the process failed")

    threading.Thread(target=run, name="cuadra-warm-process", daemon=True).start()


def _follow(store: Store, seconds: float) -> threading.Event:
    """Bring a remote store's new snapshots here every ``seconds``, in the background.

    Requests keep reading the snapshot they began with; a new one is served once every
    file it names is on this machine. A local store's readers see new manifests at once.
    """
    stop = threading.Event()
    if store.remote is None:
        return stop

    def follow() -> None:
        while not stop.wait(seconds):
            try:
                store.refresh()
            except Exception:  # the object store unreachable for a while: keep serving
                log.exception("refreshing %s failed", store.location)

    threading.Thread(target=follow, name="cuadra-refresh", daemon=True).start()
    return stop


def _lifespan(settings: ServerSettings, warm_release: bool) -> Any:
    """What the app opens at start and closes at shutdown: the store, the engine, the workers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store = Store(settings.store)
        app.state.keys = KeyRing(store.root)
        app.state.alerts = Book.of(store)
        app.state.rules = rules_from_settings(settings)
        app.state.settings = settings
        # One query engine for the app; each request takes its own cursor (a connection
        # is not thread-safe, and FastAPI runs sync routes in a thread pool).
        app.state.engine = open_engine(threads=2)
        _warm_in_background(app)
        stop = _follow(store, settings.refresh_seconds)
        preparing = _prepare_each_snapshot(store, app.state.engine)
        if warm_release:
            # With `--workers N`, each worker: tables another built (or is building) are
            # read from the store, not built again.
            _warm_release(store, settings)
        try:
            yield
        finally:
            stop.set()
            store.on_new_snapshot = None
            preparing.shutdown(wait=True, cancel_futures=True)
            app.state.engine.close()
            tables.shutdown()

    return lifespan


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
