"""The store's query engine: one embedded DuckDB, a cursor per request, a stopped query.

Whoever serves the store (``api/``) holds an engine and hands cursors to the store's
queries; it never needs to know which engine it is.
"""

from __future__ import annotations

import duckdb

from store.shapes import register

Cursor = duckdb.DuckDBPyConnection
"""A cursor of the engine: one per thread (a connection is not thread-safe)."""

QueryInterrupted = duckdb.InterruptException
"""What a query raises when its cursor was interrupted (the request's time limit)."""


def open_engine(threads: int = 2) -> Cursor:
    """An in-memory engine whose cursors the store's queries run on.

    Its cursors know ``cuadra_inside`` (the test of a drawn area, store/shapes.py).
    """
    con = duckdb.connect(config={"threads": threads})
    register(con)
    return con


def version() -> str:
    """The engine's version (``/health`` reports it)."""
    return str(duckdb.__version__)
