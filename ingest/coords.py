"""Coordinates: parsing, CRS, sentinels, swapped axes, range and jurisdiction checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo.crs import WGS84, is_geographic, transform_xy
from ingest.arrays import to_bool
from ingest.profiles import Profile
from ingest.reasons import CODE, Reason

Codes = npt.NDArray[np.int8]
Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
# A jurisdiction test: lon, lat arrays -> inside mask.
Jurisdiction = Callable[[Floats, Floats], Mask]

# Values that sources write for "no location" (exact matches on either axis).
SENTINELS = np.array([0.0, 999.0, 9999.0, 99999.0, 999999.0, -999.0, -9999.0, -99999.0, -999999.0])
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_COMMA_NUMBER = r"^[+-]?\d+,\d+$"


@dataclass
class Coordinates:
    """Parsed WGS84 coordinates, with per-row reject codes and the swap repairs."""

    lon: Floats
    lat: Floats
    swapped: Mask


def _reject(codes: Codes, mask: Mask, reason: Reason) -> None:
    codes[(codes == 0) & mask] = CODE[reason]


def parse_number(column: pa.ChunkedArray | pa.Array, profile: Profile, codes: Codes) -> Floats:
    """Parse one coordinate column to float64, recording missing and non-numeric rows."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        values = np.where(to_bool(pc.is_null(arr)), np.nan, values).astype(np.float64)
        _reject(codes, np.isnan(values), Reason.MISSING_COORDINATES)
        return values
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    nulls = pa.array(profile.parse.null_values, pa.string())
    missing = to_bool(pc.or_(pc.is_null(text), pc.is_in(text, nulls)), True)
    _reject(codes, missing, Reason.MISSING_COORDINATES)
    if profile.parse.decimal == ",":
        text = pc.replace_substring(text, ",", ".", max_replacements=1)
    else:
        comma = to_bool(pc.match_substring_regex(text, _COMMA_NUMBER))
        _reject(codes, comma, Reason.DECIMAL_COMMA)
    ok = to_bool(pc.match_substring_regex(text, _NUMBER))
    _reject(codes, ~ok, Reason.NON_NUMERIC_COORDINATES)
    values = np.full(n, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size:
        values[idx] = pc.cast(text.take(pa.array(idx)), pa.float64()).to_numpy(zero_copy_only=False)
    return values


def geometry_points(column: pa.ChunkedArray, codes: Codes) -> tuple[Floats, Floats]:
    """x/y of a WKB point column; rows with no geometry or another type are rejected."""
    geoms = shapely.from_wkb(np.asarray(column.to_pylist(), dtype=object))
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    _reject(codes, missing, Reason.MISSING_COORDINATES)
    point = shapely.get_type_id(geoms) == 0
    _reject(codes, ~point, Reason.NOT_A_POINT)
    x = np.where(point & ~missing, shapely.get_x(geoms), np.nan).astype(np.float64)
    y = np.where(point & ~missing, shapely.get_y(geoms), np.nan).astype(np.float64)
    return x, y


def check_coordinates(
    x: Floats,
    y: Floats,
    profile: Profile,
    codes: Codes,
    jurisdiction: Jurisdiction | None,
    source_crs: str | None = None,
) -> Coordinates:
    """Validate parsed x/y and return WGS84 lon/lat; reject codes are set in place.

    Order: sentinels, projected-without-CRS, CRS transform, swapped axes (before range
    checks, so that a swapped point is recognised rather than called out of range), range,
    jurisdiction.
    """
    crs = profile.parse.crs or source_crs or WGS84
    live = codes == 0
    _reject(
        codes, live & (np.isin(x, SENTINELS) | np.isin(y, SENTINELS)), Reason.SENTINEL_COORDINATES
    )
    if is_geographic(crs):
        big = (np.abs(x) > 1000) | (np.abs(y) > 1000)
        _reject(codes, big, Reason.PROJECTED_WITHOUT_CRS)
        lon, lat = x.copy(), y.copy()
        if crs != WGS84:
            ok = codes == 0
            lon[ok], lat[ok] = transform_xy(x[ok], y[ok], crs, WGS84)
    else:
        ok = codes == 0
        lon = np.full(x.shape, np.nan)
        lat = np.full(x.shape, np.nan)
        lon[ok], lat[ok] = transform_xy(x[ok], y[ok], crs, WGS84)
        _reject(codes, ~np.isfinite(lon) | ~np.isfinite(lat), Reason.OUT_OF_RANGE)

    swapped = np.zeros(x.shape, dtype=bool)
    live = np.flatnonzero(codes == 0)
    if live.size:
        a, b = lon[live], lat[live]
        in_range = _in_range(a, b)
        in_range_swapped = _in_range(b, a)
        if jurisdiction is not None:
            inside = np.zeros(live.size, dtype=bool)
            inside[in_range] = jurisdiction(a[in_range], b[in_range])
            test = ~inside & in_range_swapped
            inside_swapped = np.zeros(live.size, dtype=bool)
            inside_swapped[test] = jurisdiction(b[test], a[test])
            # Repair only when the swapped point falls inside the jurisdiction.
            fix = live[inside_swapped]
            lon[fix], lat[fix] = lat[fix].copy(), lon[fix].copy()
            swapped[fix] = True
            outside = live[~inside & ~inside_swapped]
            _reject(
                codes,
                _mask(x.shape, outside[~_in_range(lon[outside], lat[outside])]),
                Reason.OUT_OF_RANGE,
            )
            _reject(codes, _mask(x.shape, outside), Reason.OUTSIDE_JURISDICTION)
        else:
            bad = live[~in_range & in_range_swapped]
            _reject(codes, _mask(x.shape, bad), Reason.SWAPPED_LAT_LON)
            _reject(codes, _mask(x.shape, live[~in_range]), Reason.OUT_OF_RANGE)
    return Coordinates(lon=lon, lat=lat, swapped=swapped)


def _in_range(lon: Floats, lat: Floats) -> Mask:
    return (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)


def _mask(shape: tuple[int, ...], idx: npt.NDArray[np.intp]) -> Mask:
    m = np.zeros(shape, dtype=bool)
    m[idx] = True
    return m
