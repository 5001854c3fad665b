"""The cells a set of tiles is cut from: counts per H3 cell, centres in Web Mercator metres.

A tile shows what /v1/aggregate publishes for the same filters and cells, so the counts
of the whole area are read once per (snapshot, filters, role, resolution) and every tile
of the set picks its cells from them. The heatmap's kernel radius and colour scale are
fixed per zoom and layer, so that neighbouring tiles agree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial import KDTree

from geo.cells import cells_to_latlng, edge_length_m
from geo.crs import WGS84, transform_xy
from geo.kde import quartic
from tiles import heatmap, hexagons
from tiles.grid import EARTH_RADIUS, TILE_SIZE, Bounds, stretch

MERCATOR = "EPSG:3857"
RADIUS_PX = 12  # heatmap kernel radius on screen, at 256-pixel tiles
SCALE_SAMPLE = 256  # cells whose density sets a zoom's colour scale
EARTH = 2 * np.pi * EARTH_RADIUS  # Web Mercator metres around the equator


@dataclass
class CellLayer:
    """Published counts of every cell at one resolution, centres in Web Mercator metres."""

    res: int
    cells: npt.NDArray[np.uint64]  # sorted by x
    counts: npt.NDArray[np.float64]
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    key: str  # a digest of what the layer is (snapshot, filters, role): part of ETags
    _scales: dict[int, float] = field(default_factory=dict)
    _radii: dict[int, float] = field(default_factory=dict)
    _tree: KDTree | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def near(self, bounds: Bounds, margin: float) -> npt.NDArray[np.intp]:
        """Indices of the cells whose centre lies within ``margin`` of the bounds."""
        lo = np.searchsorted(self.x, bounds.west - margin, side="left")
        hi = np.searchsorted(self.x, bounds.east + margin, side="right")
        ys = self.y[lo:hi]
        keep = (ys >= bounds.south - margin) & (ys <= bounds.north + margin)
        return lo + np.flatnonzero(keep)

    def radius(self, z: int) -> float:
        """The heatmap kernel radius (Mercator metres) at zoom ``z``.

        RADIUS_PX on screen, and never less than two cell widths: coarse public cells
        would show as dots otherwise.
        """
        if z not in self._radii:
            pixel = EARTH / (TILE_SIZE * 2**z)
            # H3 edge lengths are true metres; Mercator metres are longer.
            middle = float(np.median(self.y)) if self.cells.size else 0.0
            edge = edge_length_m(self.res) * stretch(middle)
            self._radii[z] = max(RADIUS_PX * pixel, 4 * edge)
        return self._radii[z]

    def scale(self, z: int) -> float:
        """The density that takes the top colour at zoom ``z`` (computed once per zoom).

        The highest kernel density at the centres of the busiest cells.
        """
        with self._lock:
            if z in self._scales:
                return self._scales[z]
            if self.cells.size == 0:
                return 0.0
            r = self.radius(z)
            if self._tree is None:
                self._tree = KDTree(np.column_stack([self.x, self.y]))
            top = np.argsort(-self.counts, kind="stable")[:SCALE_SAMPLE]
            best = 0.0
            for i in top:
                near = self._tree.query_ball_point([self.x[i], self.y[i]], r, return_sorted=False)
                d = np.hypot(self.x[near] - self.x[i], self.y[near] - self.y[i])
                best = max(best, float((self.counts[near] * quartic(d, r)).sum()))
            self._scales[z] = best
            return best

    @classmethod
    def of(
        cls, res: int, cells: npt.NDArray[np.uint64], counts: npt.NDArray[np.float64], key: str
    ) -> CellLayer:
        """A layer of these cells and counts, sorted by their centres' x."""
        lat, lon = cells_to_latlng(cells)
        x, y = transform_xy(lon, lat, WGS84, MERCATOR)
        order = np.argsort(x, kind="stable")
        return cls(res, cells[order], counts[order], x[order], y[order], key)

    def heatmap_png(
        self, bounds: Bounds, z: int, size: int = TILE_SIZE, scale: float | None = None
    ) -> bytes:
        """The heatmap tile of ``bounds`` at zoom ``z``, ``size`` pixels a side (b"": empty).

        ``scale``: the density that takes the top colour, when a set of layers shares one
        (the months of an animation); the layer's own otherwise.
        """
        radius = self.radius(z)
        near = self.near(bounds, radius)
        if near.size == 0:
            return b""
        values = heatmap.density(
            self.x[near], self.y[near], self.counts[near], bounds, radius, size
        )
        index = heatmap.levels(values, self.scale(z) if scale is None else scale)
        return heatmap.encode_png(index) if index.any() else b""

    def hexagons_mvt(self, bounds: Bounds) -> bytes:
        """The hexagon tile of ``bounds``: every cell that may reach into it (b"": empty)."""
        # A cell whose centre is within a cell's width of the tile may reach into it.
        edge = edge_length_m(self.res)
        margin = 2.5 * edge * stretch((bounds.south + bounds.north) / 2)
        near = self.near(bounds, margin)
        return hexagons.encode(self.cells[near], self.counts[near].astype(np.int64), bounds)
