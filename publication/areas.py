"""A drawn area (circle or polygon) as the public sees it: the whole units it touches.

Two shapes a house apart would difference a count below k if the public got points in
a shape. It gets, instead, the release's cells of every unit the shape touches, named
in the answer: any difference of two answers is a sum of published cells (docs/privacy.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo.cells import cells_to_hex, cells_to_polygons, hex_to_cells, polygon_cells
from store.aggregate import Unit, unit_attributes
from store.snapshot import Kind, Snapshot

# A layer's shapes, parsed once per snapshot (a few layers; colonias are ~10 MB).
SHAPES = Kind("layer shapes", items=8)


def layer_shapes(snap: Snapshot, unit: Unit) -> tuple[dict[str, int], Any, Any]:
    """A layer's ids (to positions), geometries and representative points, once per version."""
    assert unit.layer is not None

    def parse() -> tuple[dict[str, int], Any, Any]:
        attrs = unit_attributes(snap, unit, geometry=True)
        shapes = shapely.from_wkb(attrs.column("geometry").to_numpy(zero_copy_only=False))
        index = {str(u): i for i, u in enumerate(attrs.column("unit_id").to_pylist())}
        return index, shapes, shapely.point_on_surface(shapes)

    return snap.memo(SHAPES, (unit.kind, unit.layer), parse)


def covered(snap: Snapshot, unit: Unit, area: Any) -> list[str]:
    """Every unit of ``unit``'s kind that the area touches (in the layer's order)."""
    if unit.kind == "h3":
        assert unit.res is not None
        return sorted(cells_to_hex(polygon_cells(area, unit.res, touching=True)))
    index, shapes, _ = layer_shapes(snap, unit)
    ids = list(index)
    hit = shapely.intersects(shapes, area)
    return [ids[i] for i in np.flatnonzero(hit)]


def touches(snap: Snapshot, unit: Unit, ids: list[str], area: Any) -> list[bool]:
    """Whether each of ``ids`` (units of ``unit``'s kind) touches the area."""
    if not ids:
        return []
    if unit.kind == "h3":
        shapes = cells_to_polygons(hex_to_cells(ids))
    else:
        index, every, _ = layer_shapes(snap, unit)
        shapes = every[[index[i] for i in ids]]
    return [bool(v) for v in shapely.intersects(shapes, area)]


def basis(snap: Snapshot, finest_h3: int, unit: Unit | None = None) -> Unit:
    """The units that answer the public for a drawn area.

    ``unit``, else the first boundary layer (colonias), else the finest public H3 cells.
    """
    if unit is not None:
        return unit
    layers = snap.boundary_layers
    return Unit("layer", layer=layers[0]) if layers else Unit("h3", res=finest_h3)


def summed(parts: list[list[int | None]], length: int) -> list[int | None]:
    """Element-wise sums of published series; None wherever any part is None.

    A part's None is a zero or a withheld cell: the sum is then unknown, not smaller.
    """
    out: list[int | None] = [0] * length
    for part in parts:
        out = [None if a is None or b is None else a + b for a, b in zip(out, part, strict=True)]
    return out
