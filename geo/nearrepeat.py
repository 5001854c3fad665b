"""Near-repeat analysis: the Knox test of space-time clustering of events.

Knox (1964) counts the pairs of events close in both space and time and compares the
count with what shuffling the dates among the same places gives; Ratcliffe's Near Repeat
Calculator extends it to a table of distance bands × time bands with Monte Carlo
p-values. Pairs are found with a KD-tree (only pairs within the largest distance band),
so the cost follows the number of close pairs, not n².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import KDTree

from geo.errors import GeoError
from geo.types import Floats

MAX_PAIRS = 20_000_000  # about 500 MB of pair indices and distances


@dataclass(frozen=True)
class Knox:
    """A Knox table: rows are distance bands, columns time bands, both half-open [lo, hi)."""

    distance_bands: Floats  # edges, metres
    time_bands: Floats  # edges, days
    observed: npt.NDArray[np.int64]
    expected: Floats  # mean over the permutations
    p: Floats  # (permutations at least as large + 1) / (permutations + 1)
    permutations: int
    seed: int
    pairs: int  # pairs within the largest distance band
    events: int


def _edges(values: npt.ArrayLike, name: str) -> Floats:
    edges = np.asarray(values, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise GeoError(f"{name} needs at least two edges")
    if not np.all(np.isfinite(edges)) or edges[0] < 0 or np.any(np.diff(edges) <= 0):
        raise GeoError(f"{name} must be finite, non-negative and increasing: {edges.tolist()}")
    return edges


class _Tally:
    """Counts pairs per (distance band, time band) for one set of dates.

    Whole-day dates (the usual case) go through a lookup table from gap in days to time
    band, faster than a search per pair: the permutations repeat this.
    """

    def __init__(self, band: npt.NDArray[np.intp], t: Floats, edges: Floats) -> None:
        self.cols = edges.size - 1
        self.edges = edges
        span = float(t.max() - t.min()) if t.size else 0.0
        self.whole = bool(np.all(t == np.round(t))) and span <= 10_000_000
        # One spare column per row takes the pairs beyond the last time edge.
        self.base = (band * (self.cols + 1)).astype(np.int64)
        if self.whole:
            gaps = np.arange(int(span) + 1, dtype=np.float64)
            col = np.searchsorted(edges, gaps, side="right") - 1
            col[(col < 0) | (gaps >= edges[-1])] = self.cols
            self.lut = col.astype(np.int64)

    def table(
        self, t: Floats, i: npt.NDArray[np.intp], j: npt.NDArray[np.intp], rows: int
    ) -> npt.NDArray[np.int64]:
        """The rows × cols table of the pairs (i, j) under dates ``t``."""
        width = self.cols + 1
        if self.whole:
            days = t.astype(np.int64)
            flat = self.base + self.lut[np.abs(days[i] - days[j])]
        else:
            gaps = np.abs(t[i] - t[j])
            col = np.searchsorted(self.edges, gaps, side="right") - 1
            col[(col < 0) | (gaps >= self.edges[-1])] = self.cols
            flat = self.base + col
        counts = np.bincount(flat, minlength=rows * width)
        return counts.reshape(rows, width)[:, : self.cols].astype(np.int64)


def close_pairs(x: Floats, y: Floats, within: float) -> tuple[npt.NDArray[np.intp], Floats]:
    """Index pairs (i < j, as two columns) of points closer than ``within``, and distances."""
    points = np.column_stack([x, y])
    tree = KDTree(points)
    # Count before listing: a wide band over a dense city is hundreds of millions of pairs.
    count = (int(tree.count_neighbors(tree, within)) - len(points)) // 2
    if count > MAX_PAIRS:
        raise GeoError(
            f"{count} pairs within {within:g} m: more than {MAX_PAIRS}; use a smaller distance or fewer events"
        )
    pairs = tree.query_pairs(within, output_type="ndarray")
    d = np.hypot(*(points[pairs[:, 0]] - points[pairs[:, 1]]).T)
    keep = d < within  # query_pairs includes the radius itself; our bands are half-open
    return pairs[keep], d[keep]


def knox(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    t: npt.ArrayLike,
    distance_bands: npt.ArrayLike,
    time_bands: npt.ArrayLike,
    permutations: int = 99,
    seed: int = 0,
    max_work: int | None = None,
) -> Knox:
    """Knox table of events at (x, y) metres and t days, with Monte Carlo p-values.

    A pair falls in distance band k when edges[k] <= distance < edges[k + 1], likewise
    for the absolute gap in days. The dates are shuffled among the events
    ``permutations`` times (seeded): the expected count of a cell is the mean of the
    shuffled counts and p = (shuffles with at least the observed count + 1) /
    (permutations + 1), one-sided because near repeats are an excess of close pairs.
    ``max_work`` bounds pairs × permutations (GeoError beyond it).
    """
    xs, ys, ts = (np.asarray(v, dtype=np.float64) for v in (x, y, t))
    if not xs.shape == ys.shape == ts.shape or xs.ndim != 1:
        raise GeoError("x, y and t must be 1-D arrays of one length")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)) and np.all(np.isfinite(ts))):
        raise GeoError("x, y and t must be finite")
    if permutations < 1:
        raise GeoError(f"permutations must be 1 or more, got {permutations}")
    d_edges, t_edges = _edges(distance_bands, "distance_bands"), _edges(time_bands, "time_bands")
    if xs.size < 2:  # no pair: an empty table, nothing in excess
        shape = (d_edges.size - 1, t_edges.size - 1)
        return Knox(
            d_edges,
            t_edges,
            np.zeros(shape, np.int64),
            np.zeros(shape),
            np.ones(shape),
            permutations,
            seed,
            0,
            int(xs.size),
        )
    pairs, d = close_pairs(xs, ys, float(d_edges[-1]))
    row = np.searchsorted(d_edges, d, side="right") - 1
    inside = row >= 0  # closer than the first edge: in no band
    pairs, row = pairs[inside], row[inside]
    rows = d_edges.size - 1
    if max_work is not None and pairs.shape[0] * permutations > max_work:
        raise GeoError(
            f"{pairs.shape[0]} pairs × {permutations} permutations is more than {max_work}: use fewer"
        )
    i, j = pairs[:, 0], pairs[:, 1]
    tally = _Tally(row, ts, t_edges)
    observed = tally.table(ts, i, j, rows)
    rng = np.random.default_rng(seed)
    total = np.zeros(observed.shape, dtype=np.float64)
    at_least = np.zeros(observed.shape, dtype=np.int64)
    for _ in range(permutations):
        table = tally.table(ts[rng.permutation(ts.size)], i, j, rows)
        total += table
        at_least += table >= observed
    return Knox(
        d_edges,
        t_edges,
        observed,
        total / permutations,
        (at_least + 1) / (permutations + 1),
        permutations,
        seed,
        int(pairs.shape[0]),
        int(xs.size),
    )


def date_precision(days: Floats) -> str:
    """``month`` when every date is the 1st of its month, else ``day``.

    Dates known to the month only (police.uk publishes them so) are stored as the 1st.
    ``days`` are dates as days since 1970-01-01. Three dates or more all on the 1st are
    taken for months (by chance that is one in 27,000 for three day-precise dates).
    """
    d = np.asarray(days, dtype=np.int64)
    if d.size < 3:
        return "day"
    first = (
        d.astype("datetime64[D]").astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    )
    return "month" if bool(np.all(d == first)) else "day"
