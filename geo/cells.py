"""H3 cells as uint64 arrays: the one module that calls an H3 library.

Points to cells, cells to parents, neighbours, outlines and the cells of a polygon
(h3ronpy, vectorised; h3-py for the few scalar questions). H3 libraries take ``lat, lng``;
everything else in Cuadra is ``lon, lat``. The swap happens here and nowhere else.
"""

from __future__ import annotations

import h3
import h3ronpy
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from h3ronpy import ContainmentMode
from h3ronpy.vector import (
    cells_to_coordinates,
    cells_to_wkb_polygons,
    coordinates_to_cells,
    geometry_to_cells,
)

from geo.errors import GeoError
from geo.types import Cells, Floats, Resolution

FINEST: Resolution = 15

# H3 index layout (https://h3geo.org/docs/core-library/h3Indexing): bits 52-55 hold the
# resolution and each finer level stores a 3-bit digit, unused digits set to 7.
_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT


def points_to_cells(lon: Floats, lat: Floats, res: Resolution = FINEST) -> Cells:
    """Index points to H3 cells at one resolution.

    Parameters
    ----------
    lon, lat
        WGS84 coordinates of equal length; non-finite values give cell 0.
    res
        H3 resolution, 0 to 15.

    Returns
    -------
    numpy.ndarray of uint64
        One cell per point, 0 where the point has no valid coordinate.
    """
    _check_res(res)
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if lon.shape != lat.shape:
        raise GeoError(f"lon and lat differ in length: {lon.shape} vs {lat.shape}")
    if lon.size == 0:
        return np.empty(0, dtype=np.uint64)
    # h3ronpy is vectorised (h3-py 4 only indexes scalars) and releases the GIL while it
    # works (benchmarks/RESULTS.md, "Ingest: where the time goes"). It refuses non-finite
    # coordinates, so those are left out (cell 0).
    finite = np.isfinite(lon) & np.isfinite(lat)
    if finite.all():
        return _index(lat, lon, res)
    cells = np.zeros(lon.shape, dtype=np.uint64)
    if finite.any():
        cells[finite] = _index(lat[finite], lon[finite], res)
    return cells


def _index(lat: Floats, lon: Floats, res: Resolution) -> Cells:
    cells = coordinates_to_cells(np.ascontiguousarray(lat), np.ascontiguousarray(lon), res)
    return np.ascontiguousarray(np.asarray(cells), dtype=np.uint64)


def cells_to_parents(cells: Cells, res: Resolution) -> Cells:
    """Return each cell's ancestor at a coarser resolution, by bit arithmetic.

    Equal to ``h3.cell_to_parent`` for every valid cell finer than ``res`` (tested
    against h3-py), at tens of millions of cells per second. Zeros stay zero.
    """
    _check_res(res)
    cells = np.asarray(cells, dtype=np.uint64)
    unused = np.uint64((1 << (3 * (FINEST - res))) - 1)
    parents = (cells & ~_RES_MASK) | (np.uint64(res) << _RES_SHIFT) | unused
    return np.where(cells == 0, np.uint64(0), parents)


def cells_resolution(cells: Cells) -> npt.NDArray[np.int8]:
    """Return the resolution encoded in each cell."""
    return ((np.asarray(cells, dtype=np.uint64) & _RES_MASK) >> _RES_SHIFT).astype(np.int8)


def cells_to_hex(cells: Cells) -> list[str]:
    """Format cells as the lower-case hex strings used at the API edge."""
    return [format(int(c), "x") for c in np.asarray(cells, dtype=np.uint64)]


def _check_res(res: int) -> None:
    if not 0 <= int(res) <= FINEST:
        raise GeoError(f"H3 resolution must be 0..15, got {res}")


def cells_to_polygons(cells: Cells) -> npt.NDArray[np.object_]:
    """Cell outlines as shapely polygons in lon/lat (from h3ronpy's WKB, already x/y)."""
    import shapely

    if len(cells) == 0:
        return np.empty(0, dtype=np.object_)
    wkb = cells_to_wkb_polygons(np.asarray(cells, dtype=np.uint64))
    return np.asarray(shapely.from_wkb(np.asarray(wkb.to_pylist(), dtype=object)), dtype=np.object_)


def cells_to_latlng(cells: Cells) -> tuple[Floats, Floats]:
    """Latitude and longitude of each cell's centre (h3ronpy, vectorised)."""
    if len(cells) == 0:
        return np.empty(0), np.empty(0)
    table = cells_to_coordinates(np.asarray(cells, dtype=np.uint64))
    lat = np.asarray(table.column("lat").to_numpy(), dtype=np.float64)
    lng = np.asarray(table.column("lng").to_numpy(), dtype=np.float64)
    return lat, lng


def hex_to_cells(hexes: list[str]) -> Cells:
    """Parse lower-case hex cell ids (the API edge) to uint64."""
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)


def cells_are_pentagons(cells: Cells) -> npt.NDArray[np.bool_]:
    """Whether each cell is one of the twelve pentagons of its resolution (six children)."""
    return np.array(
        [h3.is_pentagon(format(int(c), "x")) for c in np.asarray(cells, np.uint64)], dtype=bool
    )


def grid_disks(cells: Cells, k: int) -> tuple[npt.NDArray[np.intp], Cells]:
    """Every cell within ``k`` steps of each cell (itself included), as pairs.

    Returns the position in ``cells`` of each pair's centre cell and the cell near it.
    """
    cells = np.ascontiguousarray(cells, dtype=np.uint64)
    if cells.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.uint64)
    disks = pa.array(h3ronpy.grid_disk(cells, k, flatten=False))
    offsets = disks.offsets.to_numpy()
    near = disks.flatten().to_numpy().astype(np.uint64)
    return np.repeat(np.arange(cells.size), np.diff(offsets)), near


def edge_length_m(res: Resolution) -> float:
    """The average edge length of a cell at ``res``, in metres on the ground."""
    return float(h3.average_hexagon_edge_length(res, "m"))


def polygon_cells(geom: object, res: Resolution, *, touching: bool) -> Cells:
    """Cells of a (multi)polygon: those it contains whole, or (``touching``) all it touches."""
    mode = ContainmentMode.IntersectsBoundary if touching else ContainmentMode.ContainsBoundary
    return np.asarray(geometry_to_cells(geom, res, containment_mode=mode), dtype=np.uint64)
