"""How concentrated incidents are across units: Lorenz curve, Gini, top-N share.

"The 50 municipalities that account for 42 percent of murders" and the law of crime
concentration (a few street segments hold half of the incidents) are read off these.
Every unit of the study area counts, zeros included: leaving them out understates it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.errors import GeoError

Counts = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Concentration:
    """Summary of a count distribution over n units."""

    n: int
    total: float
    gini: float
    units_for_half: int  # fewest units holding at least 50 % of the incidents
    lorenz_units: Counts  # cumulative share of units, 0..1 (units ascending by count)
    lorenz_incidents: Counts  # cumulative share of incidents at each point


def concentration(counts: npt.ArrayLike) -> Concentration:
    """Lorenz curve (from 0), Gini and the fewest units holding half of the incidents."""
    y = np.sort(np.asarray(counts, dtype=np.float64))
    if y.size == 0:
        raise GeoError("no units to measure concentration over")
    if (y < 0).any():
        raise GeoError("counts cannot be negative")
    total = float(y.sum())
    n = y.size
    units = np.arange(n + 1) / n
    if total == 0:
        return Concentration(n, 0.0, 0.0, 0, units, units.copy())
    shares = np.r_[0.0, np.cumsum(y)] / total
    # Gini = 1 - 2 x (area under the Lorenz curve), by trapezoids.
    gini = float(1.0 - np.sum((shares[1:] + shares[:-1]) / n))
    return Concentration(n, total, gini, units_for_share(y, 0.5), units, shares)


def units_for_share(counts: npt.ArrayLike, share: float) -> int:
    """The fewest units (largest first) whose incidents reach ``share`` of the total."""
    if not 0 < share <= 1:
        raise GeoError(f"share must be in (0, 1], got {share}")
    y = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    total = y.sum()
    if total == 0:
        return 0
    return int(np.searchsorted(np.cumsum(y), share * total - 1e-9 * total) + 1)


def top_share(counts: npt.ArrayLike, top: int) -> float:
    """Share of all incidents held by the ``top`` units with the most."""
    y = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    total = y.sum()
    return float(y[:top].sum() / total) if total else 0.0
