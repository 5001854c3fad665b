"""Ad hoc areas drawn by a user: a polygon or multipolygon, checked, and the engine's test.

A shape travels as its WKB bytes (hashable: filters are memo keys); the engine tests
points against it with ``cuadra_inside(lon, lat, wkb)``, a vectorised function that
every cursor of the engine knows (``register``). Points on the boundary count as inside,
as a bbox's edges do.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import shapely
from pyproj import Geod

from store.errors import StoreError

# A drawn area is a neighbourhood, a campus, a district: a city-wide polygon is a
# bbox or a boundary layer's job, and thousands of vertices are a file, not a drawing.
MAX_VERTICES = 2_000
MAX_AREA_KM2 = 2_500.0  # Mexico City is 1,495 km²
INSIDE = "cuadra_inside"
_GEOD = Geod(ellps="WGS84")


class ShapeError(StoreError):
    """A shape that cannot be an area: the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Shape(NamedTuple):
    """A polygon or multipolygon (WGS84 lon/lat) by its WKB."""

    wkb: bytes

    @property
    def geometry(self) -> Any:
        """The parsed, prepared geometry (parsed once per process and shape)."""
        return _parsed(self.wkb)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """minlon, minlat, maxlon, maxlat."""
        b = shapely.bounds(self.geometry)
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])

    def area_km2(self) -> float:
        """The area on the WGS84 ellipsoid, km²."""
        area, _ = _GEOD.geometry_area_perimeter(self.geometry)
        return abs(float(area)) / 1e6

    def geojson(self) -> dict[str, Any]:
        """The shape as a GeoJSON geometry."""
        out: dict[str, Any] = shapely.geometry.mapping(self.geometry)
        return out


def circle_polygon(lon: float, lat: float, metres: float, sides: int = 64) -> Any:
    """A polygon of ``sides`` vertices around a geodesic circle (what it covers, for units).

    Circumscribed: the vertices lie a little outside the circle, so the polygon holds it.
    """
    metres = metres / float(np.cos(np.pi / sides))
    azimuths = np.linspace(0.0, 360.0, sides, endpoint=False)
    n = azimuths.size
    xs, ys, _ = _GEOD.fwd(np.full(n, lon), np.full(n, lat), azimuths, np.full(n, metres))
    return shapely.Polygon(np.column_stack([xs, ys]))


def shape_of(geometry: dict[str, Any]) -> Shape:
    """A checked Shape from a GeoJSON Polygon or MultiPolygon geometry; ShapeError otherwise."""
    try:
        geom = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ShapeError(f"not a GeoJSON polygon: {exc}") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ShapeError(f"a Polygon or MultiPolygon, not a {geom.geom_type}")
    if geom.is_empty:
        raise ShapeError("the polygon is empty")
    vertices = int(shapely.get_num_coordinates(geom))
    if vertices > MAX_VERTICES:
        raise ShapeError(f"{vertices:,} vertices; at most {MAX_VERTICES:,}")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        raise ShapeError("coordinates must be lon,lat in WGS84 degrees")
    if not geom.is_valid:
        raise ShapeError(f"not a valid polygon: {shapely.is_valid_reason(geom)}")
    shape = Shape(shapely.to_wkb(geom, byte_order=1))
    area = shape.area_km2()
    if area > MAX_AREA_KM2:
        raise ShapeError(f"covers {area:,.0f} km²; at most {MAX_AREA_KM2:,.0f}")
    return shape


@lru_cache(maxsize=64)
def _parsed(wkb: bytes) -> Any:
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


def _inside(lon: pa.Array, lat: pa.Array, wkb: pa.Array) -> pa.Array:
    """The engine's test: one boolean per point (the shape is the same on every row)."""
    if len(lon) == 0:
        return pa.array([], pa.bool_())
    geom = _parsed(wkb[0].as_py())
    x = np.asarray(lon.to_numpy(zero_copy_only=False), np.float64)
    y = np.asarray(lat.to_numpy(zero_copy_only=False), np.float64)
    return pa.array(shapely.intersects_xy(geom, x, y))


def register(con: Any) -> None:
    """Teach an engine connection (and its cursors) ``cuadra_inside(lon, lat, wkb)``."""
    con.create_function(
        INSIDE, _inside, ["DOUBLE", "DOUBLE", "BLOB"], "BOOLEAN", type="arrow", side_effects=False
    )


def condition(shape: Shape) -> tuple[str, list[Any]]:
    """The SQL test of a point column pair against ``shape`` and its bound parameters.

    The bounding box first: Parquet statistics prune row groups, and the function sees
    only the points near the shape.
    """
    minlon, minlat, maxlon, maxlat = shape.bounds
    sql = f"lon BETWEEN ? AND ? AND lat BETWEEN ? AND ? AND {INSIDE}(lon, lat, ?)"
    return sql, [minlon, maxlon, minlat, maxlat, shape.wkb]
