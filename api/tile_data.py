"""The data behind tiles: published counts per H3 cell, cached per filter set.

A tile shows exactly what /v1/aggregate publishes for the same filters and cells (public
rules applied), so the counts of the whole area are computed once per (snapshot, filters,
role, resolution) and every tile of the set picks its cells from them. Colour scales are
fixed per zoom and filter set, so that neighbouring tiles agree.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import h3
import numpy as np
import numpy.typing as npt
import shapely
from scipy.spatial import KDTree

from disclosure.rules import PublicRules
from geo.cells import cells_to_latlng, hex_to_cells
from geo.crs import WGS84, transform_xy
from publication.figures import PublicView, published_counts
from store.aggregate import Unit
from store.engine import Cursor
from store.filters import Filters
from store.layers import read_layer_columns
from store.snapshot import Kind, Snapshot
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
            edge = h3.average_hexagon_edge_length(self.res, "m") * stretch(middle)
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
                d2 = (self.x[near] - self.x[i]) ** 2 + (self.y[near] - self.y[i]) ** 2
                u = np.clip(1 - d2 / (r * r), 0, None)
                best = max(best, float((self.counts[near] * 3 / (np.pi * r * r) * u * u).sum()))
            self._scales[z] = best
            return best


# Published cells per (filters, role, resolution) of a snapshot: what tiles are cut from.
CELL_LAYERS = Kind("tile cell layers", items=16)
AREA_BOUNDS = Kind("study area bounds", items=4)


def cell_layer(
    snap: Snapshot,
    res: int,
    flt: Filters,
    pub: PublicView | None,
    rules: PublicRules,
    cursor: Cursor,
) -> CellLayer:
    """The published counts at ``res`` under the filters (a request's view of them)."""
    key = (str(snap.root), snap.id, res, flt, pub, rules if pub is not None else None)

    def build() -> CellLayer:
        shown = published_counts(snap, Unit("h3", res=res), flt, pub, rules, cursor)
        cells = hex_to_cells(shown.table.column("unit_id").to_pylist())
        counts = shown.table.column("count").to_numpy().astype(np.float64)
        lat, lon = cells_to_latlng(cells)
        x, y = transform_xy(lon, lat, WGS84, MERCATOR)
        order = np.argsort(x, kind="stable")
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
        return CellLayer(res, cells[order], counts[order], x[order], y[order], digest)

    return snap.memo(CELL_LAYERS, key, build)


def area_bounds(snap: Snapshot) -> tuple[float, float, float, float] | None:
    """Longitude/latitude bounds of the first boundary layer (None without one)."""
    if not snap.boundary_layers:
        return None
    path = snap.path(snap.layer(snap.boundary_layers[0]).path)

    def bounds() -> tuple[float, float, float, float]:
        table = read_layer_columns(path, ("geometry",))
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        west, south, east, north = shapely.total_bounds(geoms)
        return float(west), float(south), float(east), float(north)

    return snap.memo(AREA_BOUNDS, (), bounds)
