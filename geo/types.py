"""Shared type aliases and small value objects for spatial code."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Cell = int
"""An H3 cell as an unsigned 64-bit integer."""

Resolution = int
"""An H3 resolution, 0 to 15."""

Cells = npt.NDArray[np.uint64]
Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int32]


class BBox(NamedTuple):
    """A bounding box in lon/lat (x, y) order."""

    minlon: float
    minlat: float
    maxlon: float
    maxlat: float

    def contains(self, lon: Floats, lat: Floats) -> npt.NDArray[np.bool_]:
        """Return which points fall inside the box (edges included)."""
        return (
            (lon >= self.minlon)
            & (lon <= self.maxlon)
            & (lat >= self.minlat)
            & (lat <= self.maxlat)
        )
