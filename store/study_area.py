"""The study area of a spatial statistic: every unit of it (zeros included) and its neighbours.

H3 units take the cells covering a boundary layer; a boundary layer unit takes all of its
polygons. Their weights are built once per snapshot (kept in the snapshot's memo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely

from geo.cells import cells_to_hex, polygon_cells
from geo.hotspots import GiWeights, h3_weights, queen_weights
from store.aggregate import Unit, layer_shapes
from store.filters import FilterError
from store.layers import layer_cells, read_layer_columns
from store.snapshot import Kind, Snapshot

_Parts = tuple[list[str], dict[str, int], sp.csr_matrix, GiWeights]
MAX_RES = 10  # finer study areas have hundreds of thousands of cells
# Neighbour pairs of an H3 study area (cells × k-ring size): building and using more takes
# several seconds a request (benchmarks/RESULTS.md, "Figures behind settings").
MAX_PAIRS = 1_200_000
# Study areas of a snapshot: ids, weights and Gi* preparation (tens of MB at h3:10).
STUDY_AREAS = Kind("study areas", items=8)
CELL_COUNTS = Kind("study area cell counts", items=32)


@dataclass(frozen=True)
class StudyArea:
    """Every unit of the area, in a fixed order, and binary weights (self included)."""

    unit_ids: list[str]
    position: dict[str, int]  # of each unit id in unit_ids
    weights: sp.csr_matrix
    prepared: GiWeights  # the same weights, ready for Gi*
    area: str  # the boundary layer it comes from
    neighbours: str  # "k-ring" or "queen"

    @property
    def n(self) -> int:
        """Units in the area."""
        return len(self.unit_ids)

    def positions(self, ids: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Each id's position among the area's units (-1 outside), and which are inside."""
        at = np.array([self.position.get(i, -1) for i in ids], dtype=np.int64)
        return at, at >= 0

    def place(
        self, ids: list[str], counts: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Counts laid out on the area's units (zeros elsewhere); which ids fell inside."""
        at, inside = self.positions(ids)
        y = np.zeros(self.n)
        np.add.at(y, at[inside], np.asarray(counts, dtype=np.float64)[inside])
        return y, inside

    def cube(
        self, ids: list[str], step: npt.ArrayLike, counts: npt.ArrayLike, steps: int
    ) -> npt.NDArray[np.float64]:
        """Counts per (unit, time step) laid out on the area's units × ``steps``."""
        at, inside = self.positions(ids)
        out = np.zeros((self.n, steps))
        np.add.at(
            out,
            (at[inside], np.asarray(step, np.int64)[inside]),
            np.asarray(counts, np.float64)[inside],
        )
        return out


def _check(unit: Unit, k: int) -> None:
    """FilterError for units no study area is made of, or a k-ring on polygons."""
    if unit.kind == "street":
        raise FilterError("unit", "street", "hot spots need cells or polygons, not streets")
    if unit.kind == "layer" and k != 1:
        raise FilterError("k", k, "polygons have queen neighbours; k applies to H3 cells")


def study_area(snap: Snapshot, unit: Unit, area: str | None, k: int = 1) -> StudyArea:
    """The study area of ``unit`` and its neighbours.

    H3 cells covering ``area`` (default: the first boundary layer) with k-ring
    neighbours, or all polygons of a layer with queen contiguity.
    """
    _check(unit, k)
    if unit.kind == "layer":
        assert unit.layer is not None
        if area not in (None, unit.layer):
            raise FilterError("area", area, f"a {unit.layer} unit is its own study area")
        path = snap.path(snap.layer(unit.layer).path)
        parts = snap.memo(STUDY_AREAS, (unit.layer,), lambda: _polygon_area(path))
        return StudyArea(*parts, unit.layer, "queen")
    layers = snap.boundary_layers
    layer = area or (layers[0] if layers else None)
    if layer is None or layer not in layers:
        raise FilterError(
            "area",
            area,
            f"no boundary layer to take the study area from (have: {', '.join(layers) or 'none'})",
        )
    assert unit.res is not None
    if unit.res > MAX_RES:
        raise FilterError("unit", f"h3:{unit.res}", f"study areas go down to h3:{MAX_RES}")
    res = unit.res
    cells_path = snap.path(str(snap.layer(layer).cells_path))
    cells = snap.memo(CELL_COUNTS, (layer, res), lambda: int(layer_cells(cells_path, res).size))
    pairs = cells * (3 * k * (k + 1) + 1)
    if pairs > MAX_PAIRS:
        raise FilterError(
            "k" if k > 1 else "unit",
            k if k > 1 else f"h3:{unit.res}",
            f"h3:{unit.res} cells over {layer} with k = {k} make {pairs:,} neighbour "
            f"pairs, more than {MAX_PAIRS:,}: use a smaller k or coarser cells",
        )
    parts = snap.memo(STUDY_AREAS, (layer, res, k), lambda: _cell_area(cells_path, res, k))
    return StudyArea(*parts, layer, f"{k}-ring")


def drawn_study_area(snap: Snapshot, unit: Unit, drawn: Any, k: int = 1) -> StudyArea:
    """The study area of a drawn area: the H3 cells or the layer's polygons it touches.

    Cells have their k-ring neighbours among them, polygons their queen neighbours.
    """
    _check(unit, k)
    if unit.kind == "layer":
        # The layer's shapes as parsed once per snapshot (store/aggregate.layer_shapes).
        index, geoms, _ = layer_shapes(snap, unit)
        hit = np.flatnonzero(shapely.intersects(geoms, drawn))
        every = list(index)
        ids = [every[i] for i in hit]
        weights = queen_weights(geoms[hit])
        position = {u: i for i, u in enumerate(ids)}
        return StudyArea(ids, position, weights, GiWeights.of(weights), "drawn area", "queen")
    assert unit.res is not None
    if unit.res > MAX_RES:
        raise FilterError("unit", f"h3:{unit.res}", f"study areas go down to h3:{MAX_RES}")
    cells = polygon_cells(drawn, unit.res, touching=True)
    pairs = int(cells.size) * (3 * k * (k + 1) + 1)
    if pairs > MAX_PAIRS:
        raise FilterError(
            "unit",
            f"h3:{unit.res}",
            f"the drawn area's h3:{unit.res} cells with k = {k} make {pairs:,} neighbour pairs, "
            f"more than {MAX_PAIRS:,}: use coarser cells or a smaller k",
        )
    ids, weights = cells_to_hex(cells), h3_weights(cells, k)
    position = {u: i for i, u in enumerate(ids)}
    return StudyArea(ids, position, weights, GiWeights.of(weights), "drawn area", f"{k}-ring")


def _cell_area(cells_path: Path, res: int, k: int) -> _Parts:
    cells = layer_cells(cells_path, res)
    ids, weights = cells_to_hex(cells), h3_weights(cells, k)
    return ids, {u: i for i, u in enumerate(ids)}, weights, GiWeights.of(weights)


def _polygon_area(path: Path) -> _Parts:
    table = read_layer_columns(path, ("id", "geometry"))
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    ids, weights = [str(i) for i in table.column("id").to_pylist()], queen_weights(geoms)
    return ids, {u: i for i, u in enumerate(ids)}, weights, GiWeights.of(weights)
