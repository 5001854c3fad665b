"""The common filters of every aggregate, hotspot and tile query, compiled to SQL.

Values are always bound parameters; the only identifiers that reach the SQL text are
column names checked against the snapshot's own list of layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from geo.types import BBox
from store.cubes import month_aligned
from store.errors import StoreError
from store.shapes import Shape, circle_polygon, condition
from store.sql import quote

MAX_LIST = 50
# A state is a few square degrees; a bbox much larger than that is a scan, not a question.
MAX_BBOX_AREA = 25.0
EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)


EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG): haversine distances in metres
MAX_RADIUS_M = 20_000.0


class Circle(NamedTuple):
    """Points within ``metres`` of a centre (great-circle distance on the mean sphere)."""

    lon: float
    lat: float
    metres: float


class FilterError(StoreError):
    """A filter value that cannot be applied; the message names the parameter."""

    def __init__(self, param: str, value: object, message: str) -> None:
        super().__init__(f"{param}={value!r}: {message}")
        self.param = param
        self.value = value
        self.message = message


@dataclass(frozen=True)
class Filters:
    """What to count. Dates, hours and weekdays are the record's local time.

    Attributes
    ----------
    start, end
        Local dates, start inclusive, end exclusive.
    categories, offenses
        Any of these (empty: all).
    hour_from, hour_to
        Local hour window, ``hour_from`` inclusive, ``hour_to`` exclusive (0–24); a window
        with ``hour_from > hour_to`` wraps past midnight (22 to 6 is 22:00–05:59).
    weekdays
        Any of these local weekdays, 0 = Monday.
    bbox
        Points inside (edges included).
    within
        ``(layer, id)``: points in that polygon of a boundary layer.
    circle
        Points within a distance of a centre (an analyst's ad hoc area).
    shape
        Points in a drawn polygon or multipolygon, edges included (store/shapes.py).
    sources
        Any of these sources (empty: all); an API key's scope lands here.
    include_sensitive
        False leaves out the offenses flagged sensitive.
    """

    start: date | None = None
    end: date | None = None
    categories: tuple[str, ...] = ()
    offenses: tuple[str, ...] = ()
    hour_from: int | None = None
    hour_to: int | None = None
    weekdays: tuple[int, ...] = ()
    bbox: BBox | None = None
    within: tuple[str, str] | None = None
    circle: Circle | None = None
    shape: Shape | None = None
    sources: tuple[str, ...] = field(default=())
    # False leaves out offenses the taxonomy flags as sensitive (public fine-grained views).
    include_sensitive: bool = True

    def check(self, layers: list[str]) -> None:
        """Raise FilterError for values that cannot mean anything."""
        for name, value in (("start", self.start), ("end", self.end)):
            if value is not None and not EARLIEST <= value <= LATEST:
                raise FilterError(
                    name, value.isoformat(), f"dates must lie between {EARLIEST} and {LATEST}"
                )
        if self.start and self.end and self.start >= self.end:
            raise FilterError("end", self.end.isoformat(), f"must be after start {self.start}")
        if (self.hour_from is None) != (self.hour_to is None):
            raise FilterError(
                "hour_from" if self.hour_from is None else "hour_to",
                None,
                "give both hour_from and hour_to",
            )
        if self.hour_from is not None and self.hour_from == self.hour_to:
            raise FilterError("hour_to", self.hour_to, "equals hour_from: an empty window")
        if self.bbox is not None:
            b = self.bbox
            if not (-180 <= b.minlon < b.maxlon <= 180 and -90 <= b.minlat < b.maxlat <= 90):
                raise FilterError("bbox", ",".join(map(str, b)), "not minlon,minlat,maxlon,maxlat")
            area = (b.maxlon - b.minlon) * (b.maxlat - b.minlat)
            if area > MAX_BBOX_AREA:
                raise FilterError(
                    "bbox",
                    ",".join(map(str, b)),
                    f"covers {area:.1f} square degrees; at most {MAX_BBOX_AREA:g}",
                )
        if self.within is not None and self.within[0] not in layers:
            raise FilterError(
                "within",
                ":".join(self.within),
                f"no boundary layer {self.within[0]!r} (layers: {', '.join(layers) or 'none'})",
            )
        if self.circle is not None:
            c = self.circle
            if not (-180 <= c.lon <= 180 and -90 <= c.lat <= 90 and 0 < c.metres <= MAX_RADIUS_M):
                shown = f"circle:{c.lon},{c.lat},{c.metres:g}"
                why = f"a centre lon,lat and a radius of 1 to {MAX_RADIUS_M:,.0f} metres"
                raise FilterError("within", shown, why)
        for name, values in (("category", self.categories), ("offense", self.offenses)):
            if len(values) > MAX_LIST:
                raise FilterError(name, len(values), f"at most {MAX_LIST} values")

    def drawn(self) -> Any | None:
        """The drawn area (a polygon, or a circle as the polygon around it), or None."""
        if self.shape is not None:
            return self.shape.geometry
        if self.circle is not None:
            c = self.circle
            return circle_polygon(c.lon, c.lat, c.metres)
        return None

    def fits_cube(self, unit_layer: str | None) -> bool:
        """True when a month × offense cube of ``unit_layer``'s units answers exactly.

        Cubes know the month, source, category, offense and unit of each count: not the
        hour, the weekday or the point, and dates only to the month.
        """
        return (
            self.hour_from is None
            and not self.weekdays
            and self.bbox is None
            and self.circle is None
            and self.shape is None
            and month_aligned(self.start)
            and month_aligned(self.end)
            and (self.within is None or self.within[0] == unit_layer)
        )

    def where(
        self,
        layers: list[str],
        cube: bool = False,
        position: Callable[[str], int] | None = None,
    ) -> tuple[str, list[Any]]:
        """The SQL condition (``TRUE`` for no filter) and its bound parameters, in order.

        With ``cube``, the condition is over a cube's columns (see ``fits_cube``): dates
        become months and ``within`` the cube's own unit, whose position in its layer
        ``position`` returns.
        """
        self.check(layers)
        if cube and not self.fits_cube(self.within[0] if self.within else None):
            raise StoreError("these filters need the incident records, not a cube")
        date_column = "month" if cube else "local_date"
        parts: list[str] = []
        params: list[Any] = []
        if self.start is not None:
            parts.append(f"{date_column} >= ?")
            params.append(self.start)
        if self.end is not None:
            parts.append(f"{date_column} < ?")
            params.append(self.end)
        if self.categories:
            parts.append(f"category IN ({', '.join('?' * len(self.categories))})")
            params.extend(self.categories)
        if self.offenses:
            parts.append(f"offense IN ({', '.join('?' * len(self.offenses))})")
            params.extend(self.offenses)
        if self.sources:
            parts.append(f"source IN ({', '.join('?' * len(self.sources))})")
            params.extend(self.sources)
        if not self.include_sensitive:
            parts.append("NOT sensitive")
        if self.hour_from is not None and self.hour_to is not None:
            joiner = "AND" if self.hour_from < self.hour_to else "OR"
            # Only records whose time of day is known: an imputed hour (a date without a
            # time, or a filler such as 00:00) would fall in a window by accident.
            parts.append(f"(local_hour >= ? {joiner} local_hour < ?) AND NOT time_imputed")
            params.extend([self.hour_from, self.hour_to])
        if self.weekdays:
            parts.append(f"(isodow(local_date) - 1) IN ({', '.join('?' * len(self.weekdays))})")
            params.extend(self.weekdays)
        if self.bbox is not None:
            parts.append("lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?")
            b = self.bbox
            params.extend([b.minlon, b.maxlon, b.minlat, b.maxlat])
        if self.within is not None:
            layer, ident = self.within
            # The layer was checked against the snapshot's list.
            if cube:
                if position is None:
                    raise StoreError("within on a cube needs the layer's unit positions")
                parts.append("unit = ?")
                params.append(position(ident))
            else:
                parts.append(f"{quote(layer)} = ?")
                params.append(ident)
        if self.circle is not None:
            c = self.circle
            # A box around the circle first (the Parquet statistics prune row groups), then
            # the haversine distance.
            dlat = math.degrees(c.metres / EARTH_RADIUS_M)
            dlon = dlat / max(math.cos(math.radians(c.lat)), 1e-6)
            parts.append(
                "lon BETWEEN ? AND ? AND lat BETWEEN ? AND ? AND 2 * ? * asin(sqrt("
                "pow(sin(radians(lat - ?) / 2), 2) + cos(radians(?)) * cos(radians(lat)) * "
                "pow(sin(radians(lon - ?) / 2), 2))) <= ?"
            )
            params.extend([c.lon - dlon, c.lon + dlon, c.lat - dlat, c.lat + dlat])
            params.extend([EARTH_RADIUS_M, c.lat, c.lat, c.lon, c.metres])
        if self.shape is not None:
            sql, values = condition(self.shape)
            parts.append(sql)
            params.extend(values)
        return (" AND ".join(parts) or "TRUE"), params
