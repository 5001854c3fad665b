"""A drawn area (circle or polygon) as the public sees it: the whole units it touches.

Two shapes a house apart would difference a count below k if the public got points in
a shape. It gets, instead, the release's cells of every unit the shape touches, named
in the answer: any difference of two answers is a sum of published cells (docs/privacy.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo.cells import cells_to_hex, polygon_cells
from store.aggregate import Unit, layer_shapes
from store.filters import FilterError
from store.snapshot import Snapshot


def covered(snap: Snapshot, unit: Unit, area: Any) -> list[str]:
    """Every unit of ``unit``'s kind that the area touches (in the layer's order)."""
    if unit.kind == "h3":
        assert unit.res is not None
        return sorted(cells_to_hex(polygon_cells(area, unit.res, touching=True)))
    index, shapes, _ = layer_shapes(snap, unit)
    ids = list(index)
    hit = shapely.intersects(shapes, area)
    return [ids[i] for i in np.flatnonzero(hit)]


def covered_at_most(snap: Snapshot, unit: Unit, area: Any, limit: int) -> list[str]:
    """``covered``, refused (FilterError naming ``within``) beyond ``limit`` units."""
    units = covered(snap, unit, area)
    if len(units) > limit:
        raise FilterError(
            "within",
            f"{len(units):,} units",
            f"the area touches {len(units):,} units of this kind; at most {limit:,} here: "
            "draw a smaller area or use coarser units",
        )
    return units


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
