"""Web Mercator tile math (morecantile's WebMercatorQuad) and the zoom → H3 tables."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import morecantile

TILE_SIZE = 256
EARTH_RADIUS = 6_378_137.0  # of Web Mercator's sphere, metres
MIN_ZOOM, MAX_ZOOM = 5, 18
# H3 resolution of the hexagon tiles by zoom: from zoom 7 on, cells 13 to 50 pixels
# across at Mexico City's latitude (readable, and at most a few hundred per tile);
# resolution 10 (about 110 m across) is the finest served.
HEX_RES = {
    5: 5,
    6: 5,
    7: 5,
    8: 6,
    9: 6,
    10: 7,
    11: 7,
    12: 8,
    13: 9,
    14: 9,
    15: 10,
    16: 10,
    17: 10,
    18: 10,
}


class Bounds(NamedTuple):
    """A box in one CRS: west, south, east, north."""

    west: float
    south: float
    east: float
    north: float


@lru_cache(maxsize=1)
def _tms() -> morecantile.TileMatrixSet:
    return morecantile.tms.get("WebMercatorQuad")


def check(z: int, x: int, y: int) -> None:
    """ValueError unless (z, x, y) is a tile of the grid."""
    if not 0 <= z <= 24 or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise ValueError(f"no tile {z}/{x}/{y}")


def mercator_bounds(z: int, x: int, y: int) -> Bounds:
    """The tile's bounds in Web Mercator metres (EPSG:3857)."""
    check(z, x, y)
    b = _tms().xy_bounds(morecantile.Tile(x, y, z))
    return Bounds(b.left, b.bottom, b.right, b.top)


def lonlat_bounds(z: int, x: int, y: int) -> Bounds:
    """The tile's bounds in longitude and latitude."""
    check(z, x, y)
    b = _tms().bounds(morecantile.Tile(x, y, z))
    return Bounds(b.left, b.bottom, b.right, b.top)


def stretch(y: float) -> float:
    """How many Web Mercator metres a true metre spans at Mercator y (1 / cos latitude)."""
    return float(math.cosh(y / EARTH_RADIUS))


def hex_res(z: int) -> int:
    """The H3 resolution of hexagon tiles at zoom ``z`` (clamped to the served range)."""
    return HEX_RES[min(max(z, MIN_ZOOM), MAX_ZOOM)]
