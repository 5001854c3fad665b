"""Hot spot statistics as pure functions: Getis-Ord Gi*, FDR, and the usual classes.

Gi* (Getis and Ord 1992; Ord and Getis 1995) with binary weights, the unit itself among
its neighbours, and the analytic normal approximation; vectorised over a sparse weights
matrix (esda's ``G_Local(star=True, transform="B")`` gives the same z, tested to 1e-9).
"""

from __future__ import annotations

from collections.abc import Sequence

import h3
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy import stats

from geo.errors import GeoError
from geo.types import Cells, Floats

LEVELS = (0.99, 0.95, 0.90)


def h3_weights(cells: Cells, k: int = 1) -> sp.csr_matrix:
    """Binary weights of H3 cells: each cell and its k-ring neighbours within ``cells``.

    ``cells`` is the whole study area (zero-count cells included), in any order; row and
    column i are ``cells[i]``.
    """
    if k < 1:
        raise GeoError(f"k must be 1 or more, got {k}")
    position = {int(c): i for i, c in enumerate(np.asarray(cells, dtype=np.uint64))}
    rows: list[int] = []
    cols: list[int] = []
    for i, cell in enumerate(position):
        for other in h3.grid_disk(h3.int_to_str(cell), k):
            j = position.get(h3.str_to_int(other))
            if j is not None:
                rows.append(i)
                cols.append(j)
    n = len(position)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def gistar(y: Sequence[float] | Floats, weights: sp.spmatrix) -> tuple[Floats, Floats]:
    """Gi* z-scores and two-sided p-values of ``y`` under binary ``weights`` (self included).

    z_i = (sum_j w_ij y_j - W_i ybar) / (s sqrt((n W2_i - W_i^2) / (n - 1))), with W_i and
    W2_i the row sums of w and w^2, ybar and s the mean and (population) standard
    deviation of all n values. A constant ``y`` has no hot spots: z = 0, p = 1.
    """
    values = np.asarray(y, dtype=np.float64)
    w = sp.csr_matrix(weights, dtype=np.float64)
    n = values.size
    if w.shape != (n, n):
        raise GeoError(f"weights are {w.shape}, values {n}")
    if n < 2:
        raise GeoError("Gi* needs at least two units")
    mean = values.mean()
    sd = values.std()
    if sd == 0:
        return np.zeros(n), np.ones(n)
    wi = np.asarray(w.sum(axis=1)).ravel()
    w2 = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    spread = np.sqrt(np.maximum(n * w2 - wi**2, 0.0) / (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (w @ values - mean * wi) / (sd * spread)
    # A unit whose neighbourhood is the whole area has no variance: nothing to test.
    z = np.where(spread > 0, z, 0.0)
    p = 2 * stats.norm.sf(np.abs(z))
    return z, p


def fdr(p: Sequence[float] | Floats) -> Floats:
    """Benjamini-Hochberg adjusted p-values (false discovery rate)."""
    values = np.asarray(p, dtype=np.float64)
    if values.size == 0:
        return values
    return np.asarray(stats.false_discovery_control(values, method="bh"), dtype=np.float64)


def classify(z: Floats, p: Floats) -> npt.NDArray[np.str_]:
    """``hot_99`` … ``cold_90`` by the sign of z and the (adjusted) p, else ``none``."""
    labels = np.full(z.size, "none", dtype="<U7")
    for level in sorted(LEVELS):  # strictest last, so that it wins
        significant = p <= 1 - level
        tag = str(round(level * 100))
        labels[significant & (z > 0)] = f"hot_{tag}"
        labels[significant & (z < 0)] = f"cold_{tag}"
    return labels
