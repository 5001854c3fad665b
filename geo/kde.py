"""Kernel density with the quartic (biweight) kernel, on a regular grid in metres.

The quartic kernel K(d) = 3 / (pi h^2) (1 - d^2 / h^2)^2 for d < h, 0 beyond (Silverman
1986, eq. 4.5) is the one of ArcGIS's Kernel Density and of CrimeStat; it integrates to one,
so the density is in incidents per square metre (reported per km²). Points are summed
exactly (no binning) with a KD-tree of the grid's cell centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import KDTree

from geo.crs import WGS84, transform_xy, utm_crs_for
from geo.errors import GeoError, ParameterError
from geo.types import Floats

MAX_CELLS = 4_000_000
# Incident × cell pairs within the bandwidth (n · π h² / cell²): a few seconds of kernel sums.
MAX_KERNEL_PAIRS = 20_000_000
MIN_CELL = 10.0
CELLS_ACROSS = 250  # default cell: the shorter side of the extent over this (as ArcGIS)
_CHUNK = 4096


def bandwidth(x: Floats, y: Floats, weights: Floats | None = None) -> float:
    """The default search radius: Silverman's rule of thumb as ArcGIS applies it to points.

    h = 0.9 · min(SD, sqrt(1 / ln 2) · Dm) · n^-0.2, with SD the standard distance from
    the (weighted) mean centre, Dm the (weighted) median distance to it and n the sum of
    the weights.
    """
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.ones(xs.size) if weights is None else np.asarray(weights, np.float64)
    n = float(w.sum())
    if xs.size == 0 or n <= 0:
        raise GeoError("no points to choose a bandwidth from")
    cx, cy = np.average(xs, weights=w), np.average(ys, weights=w)
    dist = np.hypot(xs - cx, ys - cy)
    sd = float(np.sqrt(np.average(dist**2, weights=w)))
    order = np.argsort(dist)
    cum = np.cumsum(w[order])
    median = float(dist[order][np.searchsorted(cum, n / 2)])
    h = 0.9 * min(sd, np.sqrt(1 / np.log(2)) * median) * n**-0.2
    if not h > 0:
        raise GeoError("the points are all in one place: give a bandwidth")
    return float(h)


@dataclass(frozen=True)
class Grid:
    """Square cells of ``size`` metres; cell (r, c) is centred at (x0 + c·size, y0 + r·size)."""

    x0: float
    y0: float
    size: float
    rows: int
    cols: int

    @classmethod
    def covering(cls, x: Floats, y: Floats, size: float, margin: float) -> Grid:
        """The grid over the points' extent widened by ``margin`` on every side."""
        if not size > 0:
            raise GeoError(f"cell size must be positive, got {size}")
        x0, y0 = float(np.min(x)) - margin, float(np.min(y)) - margin
        cols = int(np.floor((float(np.max(x)) + margin - x0) / size)) + 1
        rows = int(np.floor((float(np.max(y)) + margin - y0) / size)) + 1
        if rows * cols > MAX_CELLS:
            raise GeoError(f"{rows} x {cols} cells is more than {MAX_CELLS}: use larger cells")
        return cls(x0 + size / 2, y0 + size / 2, size, rows, cols)

    def centres(self) -> tuple[Floats, Floats]:
        """The x and y of every cell centre, row by row."""
        xs = self.x0 + self.size * np.arange(self.cols)
        ys = self.y0 + self.size * np.arange(self.rows)
        gx, gy = np.meshgrid(xs, ys)
        return gx.ravel(), gy.ravel()


def quartic(d: Floats, h: float) -> Floats:
    """The quartic kernel at distances ``d`` from a point, bandwidth ``h`` (integrates to 1)."""
    u = 1.0 - (d / h) ** 2
    return np.where(u > 0, 3.0 / (np.pi * h * h) * u * u, 0.0)


def quartic_density(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    grid: Grid,
    h: float,
    weights: npt.ArrayLike | None = None,
) -> Floats:
    """Density (per square metre) at each cell centre of ``grid``: rows × cols."""
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.ones(xs.size) if weights is None else np.asarray(weights, np.float64)
    if not h > 0:
        raise GeoError(f"bandwidth must be positive, got {h}")
    gx, gy = grid.centres()
    out = np.zeros(gx.size)
    if xs.size:
        cells = KDTree(np.column_stack([gx, gy]))
        for start in range(0, xs.size, _CHUNK):
            sl = slice(start, start + _CHUNK)
            pts = KDTree(np.column_stack([xs[sl], ys[sl]]))
            near = pts.sparse_distance_matrix(cells, h, output_type="coo_matrix")
            k = quartic(near.data, h) * w[sl][near.row]
            out += np.bincount(near.col, weights=k, minlength=gx.size)
    return out.reshape(grid.rows, grid.cols)


@dataclass(frozen=True)
class Surface:
    """A density surface: its grid in a metric CRS and the cells above zero."""

    kernel: str
    crs: str | None  # None: no incident
    bandwidth: float | None  # metres
    bandwidth_rule: str  # "given", "silverman" or "none"
    cell_size: float | None  # metres
    origin: list[float] | None  # x, y of the centre of cell (0, 0) in ``crs``
    rows: int
    cols: int
    events: int
    units: str
    cells: list[list[float]]  # [row, col, lon, lat, density per km²]


def density_surface(lon: Floats, lat: Floats, h: float | None, cell: float | None) -> Surface:
    """Quartic KDE of points in the UTM zone of their centre, per km².

    ``h`` None: Silverman's rule; ``cell`` None: the extent's shorter side over 250 cells.
    ParameterError names ``bandwidth`` or ``cell_size`` when the sums would be too many.
    """
    if lon.size == 0:  # an empty surface, not an error: a dashboard's filter can match nothing
        return Surface(
            "quartic",
            None,
            h,
            "given" if h else "none",
            cell,
            None,
            0,
            0,
            0,
            "incidents per km²",
            [],
        )
    crs = utm_crs_for(float(np.median(lon)), float(np.median(lat)))
    x, y = transform_xy(lon, lat, WGS84, crs)
    rule = "given" if h is not None else "silverman"
    radius = h if h is not None else bandwidth(x, y)
    if cell is None:
        shorter = min(float(np.ptp(x)), float(np.ptp(y))) or radius
        cell = max(MIN_CELL, shorter / CELLS_ACROSS)
    pairs = lon.size * np.pi * (radius / cell) ** 2
    if pairs > MAX_KERNEL_PAIRS:
        least = radius * float(np.sqrt(np.pi * lon.size / MAX_KERNEL_PAIRS))
        name, value = ("bandwidth", h) if h is not None else ("cell_size", cell)
        raise ParameterError(
            name,
            value,
            f"{lon.size:,} incidents × ~{np.pi * (radius / cell) ** 2:,.0f} cells each "
            f"within {radius:,.0f} m is more than {MAX_KERNEL_PAIRS:,} kernel sums: "
            f"use cells of at least {least:,.0f} m, a smaller bandwidth, or fewer incidents",
        )
    try:
        grid = Grid.covering(x, y, cell, radius)
    except GeoError as exc:  # too many cells for this cell size
        raise ParameterError("cell_size", cell, str(exc)) from None
    surface = quartic_density(x, y, grid, radius) * 1e6  # per km²
    r, c = np.nonzero(surface > 0)
    cx = (grid.x0 + c * grid.size).astype(np.float64)
    cy = (grid.y0 + r * grid.size).astype(np.float64)
    clon, clat = transform_xy(cx, cy, crs, WGS84)
    values = surface[r, c]
    cells = np.column_stack([r, c, np.round(clon, 6), np.round(clat, 6), values]).tolist()
    return Surface(
        "quartic",
        crs,
        radius,
        rule,
        cell,
        [grid.x0, grid.y0],
        grid.rows,
        grid.cols,
        int(lon.size),
        "incidents per km²",
        cells,
    )
