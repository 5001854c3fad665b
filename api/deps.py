"""Shared request dependencies: the snapshot read, a query cursor, and the common filters."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from pydantic import StringConstraints

from geo.types import BBox
from store import Store
from store.engine import Cursor
from store.filters import Circle, FilterError, Filters
from store.snapshot import Snapshot

T = TypeVar("T")


async def get_cursor(request: Request) -> AsyncIterator[Cursor]:
    """A cursor of the app's query engine for one request, closed afterwards.

    A connection is not thread-safe and FastAPI runs sync routes in a thread pool;
    a cursor per request is. The dependencies are ``async`` because they do not block:
    FastAPI would run sync ones in the thread pool, one hop each.
    """
    cursor = request.app.state.engine.cursor()
    # The request's time limit: the engine stops the query, and the handler answers 503.
    limit = request.app.state.settings.request_timeout
    timer = asyncio.get_running_loop().call_later(limit, cursor.interrupt)
    try:
        yield cursor
    finally:
        timer.cancel()
        cursor.close()


CursorDep = Annotated[Cursor, Depends(get_cursor)]


async def get_snapshot(
    request: Request,
    as_of: Annotated[
        int | None,
        Query(ge=1, le=10**8, description="Read an older snapshot by its id.", examples=[1]),
    ] = None,
) -> Snapshot:
    """The snapshot a request reads: the current one, or ``as_of``."""
    store: Store = request.app.state.store
    return store.snapshot(as_of)


SnapshotDep = Annotated[Snapshot, Depends(get_snapshot)]


# An offense or category name as published (the longest in Mexico City's file is ~110).
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


@dataclass
class CommonFilters:
    """The filters every aggregate, hotspot and tile route takes (SPEC §5)."""

    start: Annotated[
        date | None,
        Query(description="First local date (inclusive), ISO.", examples=["2023-01-01"]),
    ] = None
    end: Annotated[
        date | None,
        Query(
            description="Local date after the last one (exclusive), ISO.", examples=["2024-01-01"]
        ),
    ] = None
    category: Annotated[
        list[Name] | None,
        Query(
            max_length=50,
            description="Category (repeatable); see /v1/meta.",
            examples=["robo_transeunte"],
        ),
    ] = None
    offense: Annotated[
        list[Name] | None,
        Query(
            max_length=50,
            description="Offense as published (repeatable).",
            examples=["ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"],
        ),
    ] = None
    hour_from: Annotated[
        int | None,
        Query(ge=0, le=23, description="Local hour window start (inclusive).", examples=[22]),
    ] = None
    hour_to: Annotated[
        int | None,
        Query(
            ge=1,
            le=24,
            description="Local hour window end (exclusive); smaller than hour_from wraps past midnight.",
            examples=[6],
        ),
    ] = None
    weekday: Annotated[
        list[int] | None,
        Query(
            max_length=7,
            description="Local weekday (repeatable), 0 = Monday … 6 = Sunday.",
            examples=[4],
        ),
    ] = None
    bbox: Annotated[
        str | None,
        Query(
            pattern=r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?,-?\d+(\.\d+)?,-?\d+(\.\d+)?$",
            max_length=100,
            description="minlon,minlat,maxlon,maxlat (WGS84), at most 25 square degrees.",
            examples=["-99.20,19.38,-99.12,19.45"],
        ),
    ] = None
    within: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z0-9_]+:.+$",
            max_length=200,
            description="layer:id, e.g. alcaldia:COYOACAN or colonia:03-045; or, with an "
            "analyst key, circle:lon,lat,metres (a radius of up to 20 km).",
            examples=["alcaldia:COYOACAN"],
        ),
    ] = None

    def to_filters(self) -> Filters:
        """The store's filter object (validated further against the snapshot)."""
        box = None
        if self.bbox is not None:
            box = BBox(*(float(v) for v in self.bbox.split(",")))
        within, circle = None, None
        if self.within is not None:
            layer, _, ident = self.within.partition(":")
            if layer == "circle":
                circle = _circle(ident)
            else:
                within = (layer, ident)
        for w in self.weekday or []:
            if not 0 <= w <= 6:
                raise FilterError("weekday", w, "must be 0 (Monday) to 6 (Sunday)")
        return Filters(
            start=self.start,
            end=self.end,
            categories=tuple(self.category or ()),
            offenses=tuple(self.offense or ()),
            hour_from=self.hour_from,
            hour_to=self.hour_to,
            weekdays=tuple(self.weekday or ()),
            bbox=box,
            within=within,
            circle=circle,
        )


def _circle(text: str) -> Circle:
    """``lon,lat,metres`` of ``within=circle:...``; FilterError otherwise."""
    try:
        lon, lat, metres = (float(v) for v in text.split(","))
    except ValueError:
        raise FilterError("within", f"circle:{text}", "circle:lon,lat,metres (numbers)") from None
    return Circle(lon, lat, metres)


def query_group(cls: type[T]) -> Callable[..., Awaitable[T]]:
    """A dependency that reads a dataclass's fields as query parameters (declared once).

    A class dependency would be called in the thread pool (one more hop per request); this
    coroutine takes the same parameters, read off the dataclass's signature.
    """

    async def dependency(**params: Any) -> T:
        return cls(**params)

    # Annotations resolved where the class is declared (they are strings under PEP 563).
    dependency.__signature__ = inspect.signature(cls, eval_str=True)  # type: ignore[attr-defined]
    dependency.__doc__ = f"The query parameters of {cls.__name__}."
    return dependency


FiltersDep = Annotated[CommonFilters, Depends(query_group(CommonFilters))]
