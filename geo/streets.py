"""Nearest street segment within a distance, exact and vectorised.

``STRtree.query_nearest`` does about 130 k points/s here, the slowest step of an ingest.
Instead the street lines are cut into straight segments and registered in a grid in
degrees whose cells are half the search distance: every segment within ``reach`` metres of
a point is registered in the point's grid cell (the point lies in the segment's bounding
box grown by the reach, converted to degrees with a safety margin). Only points that have
candidates are projected to the metric CRS, and their distances to the candidate segments
are computed there, exactly, with numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from geo.crs import transform_xy
from geo.errors import GeoError
from geo.types import Floats, Indices

_M_PER_DEG_LAT_MIN = 110_574.0  # at the equator, the shortest degree of latitude
_M_PER_DEG_EQUATOR = 111_320.0
# Grid-space Euclid vs metric CRS distance: UTM scale errors stay well under 1 %.
_SAFETY = 1.02


@dataclass(frozen=True)
class SegmentIndex:
    """Straight segments of a street layer in a dense lon/lat grid.

    ``offsets`` is a CSR index: the segments registered in grid cell ``k`` are
    ``cell_segment[offsets[k]:offsets[k + 1]]``, with ``k = ix * ny + iy``.
    Segment end points are kept in the metric CRS for the distance computation.
    """

    x0: Floats
    y0: Floats
    x1: Floats
    y1: Floats
    feature: Indices
    metric_crs: str
    reach: float
    cell: tuple[float, float]
    origin: tuple[float, float]
    shape: tuple[int, int]
    offsets: npt.NDArray[np.int64]
    cell_segment: npt.NDArray[np.int32]

    @classmethod
    def from_lines(
        cls, lines: npt.NDArray[np.object_], metric_crs: str, reach: float
    ) -> SegmentIndex:
        """Cut WGS84 lines into segments, grid them, and project them to ``metric_crs``.

        Parameters
        ----------
        lines
            Shapely (multi)linestrings in lon/lat; a segment remembers its line's position.
        metric_crs
            A projected CRS in metres (e.g. the UTM zone) where distances are measured.
        reach
            The largest distance (metres) that ``nearest`` may be asked for.
        """
        if reach <= 0:
            raise GeoError(f"reach must be positive, got {reach}")
        geoms, owner = shapely.get_parts(lines, return_index=True)
        coords, ring = shapely.get_coordinates(geoms, return_index=True)
        same = ring[1:] == ring[:-1]
        lon0, lat0 = coords[:-1, 0][same], coords[:-1, 1][same]
        lon1, lat1 = coords[1:, 0][same], coords[1:, 1][same]
        feature = owner[ring[:-1][same]].astype(np.int32)
        ok = np.isfinite(lon0) & np.isfinite(lat0) & np.isfinite(lon1) & np.isfinite(lat1)
        lon0, lat0, lon1, lat1, feature = lon0[ok], lat0[ok], lon1[ok], lat1[ok], feature[ok]
        x0, y0 = transform_xy(lon0, lat0, "EPSG:4326", metric_crs)
        x1, y1 = transform_xy(lon1, lat1, "EPSG:4326", metric_crs)
        if lon0.size == 0:
            cell, origin, shape = (1.0, 1.0), (0.0, 0.0), (0, 0)
            offsets = np.zeros(1, np.int64)
            seg = np.empty(0, np.int64)
        else:
            # Degrees that certainly span `reach` metres anywhere in the layer's extent.
            max_abs_lat = float(min(89.0, np.max(np.abs(np.r_[lat0, lat1])) + 1.0))
            reach_lat = reach * _SAFETY / _M_PER_DEG_LAT_MIN
            reach_lon = reach * _SAFETY / (_M_PER_DEG_EQUATOR * np.cos(np.radians(max_abs_lat)))
            cell = (reach_lon / 2.0, reach_lat / 2.0)
            origin = (
                float(min(lon0.min(), lon1.min())) - 2 * reach_lon,
                float(min(lat0.min(), lat1.min())) - 2 * reach_lat,
            )
            nx = (
                int(np.ceil((max(lon0.max(), lon1.max()) + 2 * reach_lon - origin[0]) / cell[0]))
                + 1
            )
            ny = (
                int(np.ceil((max(lat0.max(), lat1.max()) + 2 * reach_lat - origin[1]) / cell[1]))
                + 1
            )
            shape = (nx, ny)
            keys, seg = _register(lon0, lat0, lon1, lat1, (reach_lon, reach_lat), cell, origin, ny)
            counts = np.bincount(keys, minlength=nx * ny)
            offsets = np.zeros(nx * ny + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
        return cls(
            x0,
            y0,
            x1,
            y1,
            feature,
            metric_crs,
            float(reach),
            cell,
            origin,
            shape,
            offsets,
            seg.astype(np.int32),
        )

    def with_reach(self, reach: float) -> SegmentIndex:
        """The same segments gridded for a larger search distance."""
        import pyproj

        back = pyproj.Transformer.from_crs(self.metric_crs, "EPSG:4326", always_xy=True)
        lon0, lat0 = back.transform(self.x0, self.y0)
        lon1, lat1 = back.transform(self.x1, self.y1)
        lines = np.asarray(
            shapely.linestrings(np.stack([np.c_[lon0, lat0], np.c_[lon1, lat1]], axis=1)),
            dtype=np.object_,
        )
        grown = SegmentIndex.from_lines(lines, self.metric_crs, reach)
        # from_lines numbers lines by position: map back to the original line positions.
        return dataclasses.replace(grown, feature=self.feature[grown.feature])

    def to_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The index as named arrays (for ``numpy.savez``); ``from_arrays`` restores it."""
        meta = np.array([self.reach, *self.cell, *self.origin, *self.shape], dtype=np.float64)
        return {
            "x0": self.x0,
            "y0": self.y0,
            "x1": self.x1,
            "y1": self.y1,
            "feature": self.feature,
            "offsets": self.offsets,
            "cell_segment": self.cell_segment,
            "meta": meta,
            "crs": np.frombuffer(self.metric_crs.encode(), dtype=np.uint8),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[np.generic]]) -> SegmentIndex:
        """Rebuild an index saved with ``to_arrays``."""
        reach, cx, cy, ox, oy, nx, ny = (float(v) for v in arrays["meta"])
        return cls(
            np.asarray(arrays["x0"], np.float64),
            np.asarray(arrays["y0"], np.float64),
            np.asarray(arrays["x1"], np.float64),
            np.asarray(arrays["y1"], np.float64),
            np.asarray(arrays["feature"], np.int32),
            bytes(arrays["crs"]).decode(),
            reach,
            (cx, cy),
            (ox, oy),
            (int(nx), int(ny)),
            np.asarray(arrays["offsets"], np.int64),
            np.asarray(arrays["cell_segment"], np.int32),
        )

    def nearest(
        self, lon: Floats, lat: Floats, max_distance: float, chunk: int = 262_144
    ) -> tuple[Indices, Floats]:
        """Return, per WGS84 point, the nearest segment's line position and its distance.

        Points with no segment within ``max_distance`` metres get -1 and NaN. Ties go to
        the lowest line position, so the answer does not depend on segment order. Points
        are taken ``chunk`` at a time so that memory stays bounded.
        """
        if max_distance > self.reach:
            raise GeoError(f"max_distance {max_distance} exceeds the index reach {self.reach}")
        line = np.full(lon.shape, -1, dtype=np.int32)
        dist = np.full(lon.shape, np.nan)
        for start in range(0, lon.size, chunk):
            part = slice(start, start + chunk)
            line[part], dist[part] = self._nearest(lon[part], lat[part], max_distance)
        return line, dist

    def _nearest(self, lon: Floats, lat: Floats, max_distance: float) -> tuple[Indices, Floats]:
        line = np.full(lon.shape, -1, dtype=np.int32)
        dist = np.full(lon.shape, np.nan)
        nx, ny = self.shape
        if self.cell_segment.size == 0 or lon.size == 0:
            return line, dist
        with np.errstate(invalid="ignore"):
            fx = np.floor((lon - self.origin[0]) / self.cell[0])
            fy = np.floor((lat - self.origin[1]) / self.cell[1])
            valid = (fx >= 0) & (fy >= 0) & (fx < nx) & (fy < ny)
        pts = np.flatnonzero(valid)
        key = fx[pts].astype(np.int64) * ny + fy[pts].astype(np.int64)
        lo = self.offsets[key]
        n = self.offsets[key + 1] - lo
        has = n > 0
        pts, lo, n = pts[has], lo[has], n[has]
        if pts.size == 0:
            return line, dist
        # Project only the points that have candidates.
        px, py = transform_xy(lon[pts], lat[pts], "EPSG:4326", self.metric_crs)
        pair = np.repeat(np.arange(pts.size), n)
        starts = np.repeat(lo - np.cumsum(n) + n, n)
        seg = self.cell_segment[starts + np.arange(pair.size)]
        d = _point_segment_distance(
            px[pair], py[pair], self.x0[seg], self.y0[seg], self.x1[seg], self.y1[seg]
        )
        near = d <= max_distance
        pair, seg, d = pair[near], seg[near], d[near]
        if pair.size == 0:
            return line, dist
        feat = self.feature[seg]
        # Pairs are grouped by point (ascending); pick min distance, then lowest line.
        group = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        best = np.minimum.reduceat(d, group)
        sizes = np.diff(np.r_[group, pair.size])
        tied = d == np.repeat(best, sizes)
        feat_or_max = np.where(tied, feat, np.iinfo(np.int32).max)
        owner = pts[pair[group]]
        line[owner] = np.minimum.reduceat(feat_or_max, group)
        dist[owner] = best
        return line, dist


def _register(
    x0: Floats,
    y0: Floats,
    x1: Floats,
    y1: Floats,
    reach: tuple[float, float],
    cell: tuple[float, float],
    origin: tuple[float, float],
    ny: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Grid keys of every cell each segment's bbox (grown by ``reach``) overlaps, sorted."""
    gx0 = np.floor((np.minimum(x0, x1) - reach[0] - origin[0]) / cell[0]).astype(np.int64)
    gx1 = np.floor((np.maximum(x0, x1) + reach[0] - origin[0]) / cell[0]).astype(np.int64)
    gy0 = np.floor((np.minimum(y0, y1) - reach[1] - origin[1]) / cell[1]).astype(np.int64)
    gy1 = np.floor((np.maximum(y0, y1) + reach[1] - origin[1]) / cell[1]).astype(np.int64)
    nxs, nys = gx1 - gx0 + 1, gy1 - gy0 + 1
    per = nxs * nys
    seg = np.repeat(np.arange(x0.size, dtype=np.int64), per)
    offset = np.arange(seg.size, dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
    kx = gx0[seg] + offset // nys[seg]
    ky = gy0[seg] + offset % nys[seg]
    keys = kx * ny + ky
    order = np.argsort(keys, kind="stable")
    return keys[order], seg[order]


def _point_segment_distance(
    px: Floats, py: Floats, ax: Floats, ay: Floats, bx: Floats, by: Floats
) -> Floats:
    """Euclidean distance from points to segments, element-wise."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = ((px - ax) * dx + (py - ay) * dy) / length2
    t = np.where(length2 > 0, np.clip(t, 0.0, 1.0), 0.0)
    cx, cy = ax + t * dx - px, ay + t * dy - py
    return np.asarray(np.hypot(cx, cy), dtype=np.float64)
