"""The one place that builds the FastAPI app."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

import duckdb
from fastapi import FastAPI, Request, Response

from api.errors import add_exception_handlers
from api.routes import aggregates, meta
from api.settings import ServerSettings
from store import Store

log = logging.getLogger("cuadra.api")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the app for a store; tests call this with their own settings."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = Store(settings.store)
        app.state.settings = settings
        # One DuckDB connection for the app; each request takes its own cursor (a
        # connection is not thread-safe, and FastAPI runs sync routes in a thread pool).
        app.state.duckdb = duckdb.connect(config={"threads": 2})
        try:
            yield
        finally:
            app.state.duckdb.close()

    app = FastAPI(
        title="Cuadra",
        summary="Georeferenced crime aggregates, hotspots and tiles from an H3-indexed store.",
        version=version("cuadra"),
        lifespan=lifespan,
    )
    add_exception_handlers(app)
    app.include_router(meta.router)
    app.include_router(aggregates.router)

    @app.middleware("http")
    async def log_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # One structured record per request (JSON), whatever the log handler.
        log.info(
            json.dumps(
                {
                    "event": "request",
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "status": response.status_code,
                    "snapshot": response.headers.get("x-cuadra-snapshot"),
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
                ensure_ascii=False,
            )
        )
        return response

    return app
