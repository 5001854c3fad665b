"""What is here: every stored unit that holds a point."""

from __future__ import annotations

import numpy as np

from geo.cells import cells_to_hex, cells_to_parents, points_to_cells
from store.aggregate import H3_MAX, H3_MIN, Unit
from store.snapshot import Snapshot
from store.store import DEFAULT_STREET_DISTANCE


def locate(snap: Snapshot, lon: float, lat: float) -> list[tuple[Unit, str | None]]:
    """The units holding a point, layer by layer.

    Each boundary layer's unit (None outside), the nearest street segment within the
    ingest's distance (None beyond), and the H3 cells ``H3_MIN..H3_MAX`` (parents of the
    point's resolution-15 cell, as records are counted).
    """
    xs, ys = np.array([lon], np.float64), np.array([lat], np.float64)
    cell15 = points_to_cells(xs, ys)
    store, manifest = snap.store, snap.manifest
    out: list[tuple[Unit, str | None]] = []
    for name in snap.boundary_layers:
        ident = store.boundary(manifest, name).assign(xs, ys, cell15)[0].as_py()
        out.append((Unit("layer", layer=name), ident))
    streets = store.streets(manifest)
    if streets is not None:
        ident = streets.snap(xs, ys, DEFAULT_STREET_DISTANCE)[0].as_py()
        out.append((Unit("street", layer=manifest.street_layer), ident))
    for res in range(H3_MIN, H3_MAX + 1):
        out.append((Unit("h3", res=res), cells_to_hex(cells_to_parents(cell15, res))[0]))
    return out
