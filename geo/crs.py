"""Coordinate reference systems: picking a metric CRS and projecting arrays."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from geo.errors import GeoError
from geo.types import Floats

WGS84 = "EPSG:4326"


def utm_crs_for(lon: float, lat: float) -> str:
    """Return the WGS84 UTM zone (as ``EPSG:326xx``/``327xx``) that holds a point."""
    if not (np.isfinite(lon) and np.isfinite(lat)):
        raise GeoError(f"cannot choose a UTM zone for ({lon}, {lat})")
    infos = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(lon, lat, lon, lat),
    )
    if not infos:
        raise GeoError(f"no UTM zone covers ({lon}, {lat})")
    return f"{infos[0].auth_name}:{infos[0].code}"


@lru_cache(maxsize=32)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def transform_xy(x: Floats, y: Floats, src: str, dst: str) -> tuple[Floats, Floats]:
    """Project coordinate arrays from ``src`` to ``dst`` (x/lon first, always)."""
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return np.asarray(x, np.float64), np.asarray(y, np.float64)
    tx, ty = _transformer(src, dst).transform(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return np.asarray(tx, np.float64), np.asarray(ty, np.float64)


def is_geographic(crs: str) -> bool:
    """Return whether a CRS has angular (degree) coordinates."""
    return bool(CRS.from_user_input(crs).is_geographic)
