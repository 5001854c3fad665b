"""Hot spot statistics as pure functions: Getis-Ord Gi*, FDR, and the usual classes.

Gi* (Getis and Ord 1992; Ord and Getis 1995) with binary weights, the unit itself among
its neighbours, and the analytic normal approximation; vectorised over a sparse weights
matrix (esda's ``G_Local(star=True, transform="B")`` gives the same z, tested to 1e-9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely
from scipy import special

from geo.cells import grid_disks
from geo.errors import GeoError
from geo.types import Cells, Floats

LEVELS = (0.99, 0.95, 0.90)
_SQRT_HALF = float(np.sqrt(0.5))


def h3_weights(cells: Cells, k: int = 1) -> sp.csr_matrix:
    """Binary weights of H3 cells: each cell and its k-ring neighbours within ``cells``.

    ``cells`` is the whole study area (zero-count cells included), in any order; row and
    column i are ``cells[i]``.
    """
    if k < 1:
        raise GeoError(f"k must be 1 or more, got {k}")
    position = {int(c): i for i, c in enumerate(np.asarray(cells, dtype=np.uint64))}
    # One row per distinct cell, in the order first met (as the study area lists them).
    distinct = np.fromiter(position, dtype=np.uint64, count=len(position))
    owner, near = grid_disks(distinct, k)
    order = np.argsort(distinct, kind="stable")
    at = np.minimum(np.searchsorted(distinct, near, sorter=order), distinct.size - 1)
    found = distinct[order[at]] == near
    rows, cols = owner[found], order[at][found]
    n = len(position)
    w = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    w.sort_indices()
    return w


@dataclass(frozen=True)
class GiWeights:
    """Weights prepared for Gi*: the matrix and what depends on it alone.

    A study area's weights serve many requests; preparing them once leaves a Gi* call
    with one sparse product and the normal tail.
    """

    matrix: sp.csr_matrix
    wi: Floats  # row sums W_i
    spread: Floats  # sqrt((n W2_i - W_i^2) / (n - 1)); inf where 0 (nothing to test)

    @classmethod
    def of(cls, weights: sp.spmatrix) -> GiWeights:
        """Prepare a square weights matrix (binary, or any non-negative weights)."""
        w = sp.csr_matrix(weights, dtype=np.float64)
        w.sort_indices()
        n = w.shape[0]
        if w.shape != (n, n):
            raise GeoError(f"weights must be square, got {w.shape}")
        ones = np.ones(n)
        wi = w @ ones
        w2 = wi if np.all(w.data == 1.0) else w.multiply(w) @ ones
        spread = np.sqrt(np.maximum(n * w2 - wi * wi, 0.0) / max(n - 1, 1))
        # A unit whose neighbourhood is the whole area has no variance: z = 0 there.
        spread[spread == 0] = np.inf
        return cls(w, wi, spread)


def gistar(y: Sequence[float] | Floats, weights: sp.spmatrix | GiWeights) -> tuple[Floats, Floats]:
    """Gi* z-scores and two-sided p-values of ``y`` under binary ``weights`` (self included).

    z_i = (sum_j w_ij y_j - W_i ybar) / (s sqrt((n W2_i - W_i^2) / (n - 1))), with W_i and
    W2_i the row sums of w and w^2, ybar and s the mean and (population) standard
    deviation of all n values. A constant ``y`` has no hot spots: z = 0, p = 1.
    ``weights`` may be prepared once with :meth:`GiWeights.of`.
    """
    values = np.asarray(y, dtype=np.float64)
    prepared = weights if isinstance(weights, GiWeights) else GiWeights.of(weights)
    n = values.size
    if prepared.matrix.shape != (n, n):
        raise GeoError(f"weights are {prepared.matrix.shape}, values {n}")
    if n < 2:
        raise GeoError("Gi* needs at least two units")
    mean = values.mean()
    sd = values.std()
    if sd == 0:
        return np.zeros(n), np.ones(n)
    z = (prepared.matrix @ values - mean * prepared.wi) / (sd * prepared.spread)
    # Two-sided normal p; erfc skips scipy.stats' argument checking (half the time).
    p = special.erfc(np.abs(z) * _SQRT_HALF)
    return z, p


def gistar_permutations(
    y: Sequence[float] | Floats, weights: sp.spmatrix, permutations: int = 999, seed: int = 0
) -> Floats:
    """Two-sided pseudo p-values of Gi* by conditional randomisation (Anselin 1995).

    Each unit keeps its own value; its neighbours' values are replaced by ``k_i`` values
    drawn without replacement from the other n - 1 units, ``permutations`` times. With m
    the number of draws at least as extreme as the observed local sum on the side it
    falls (the smaller tail), p = min(1, 2 (m + 1) / (permutations + 1)): twice esda's
    folded ``p_sim``. Binary weights; one table of draws is shared by all units, as in
    esda, so a seed gives the same answer on any machine with the same numpy.
    """
    values = np.asarray(y, dtype=np.float64)
    w = sp.csr_matrix(weights, dtype=np.float64)
    n = values.size
    if w.shape != (n, n):
        raise GeoError(f"weights are {w.shape}, values {n}")
    if permutations < 1:
        raise GeoError(f"permutations must be 1 or more, got {permutations}")
    observed = w @ values
    own = w.diagonal() * values
    k = np.diff(w.indptr) - (w.diagonal() != 0)  # neighbours other than the unit itself
    rng = np.random.default_rng(seed)
    kmax = int(k.max(initial=0))
    draws = np.stack([rng.permutation(n - 1)[:kmax] for _ in range(permutations)])
    p = np.ones(n)
    for size in np.unique(k):
        if size == 0:
            continue
        units = np.flatnonzero(k == size)
        head = draws[:, :size]
        for chunk in np.array_split(units, max(1, units.size * permutations * size // 4_000_000)):
            idx = head[None, :, :] + (head[None, :, :] >= chunk[:, None, None])  # skip self
            sims = own[chunk, None] + values[idx].sum(axis=2)
            obs = observed[chunk, None]
            m = np.minimum((sims >= obs).sum(axis=1), (sims <= obs).sum(axis=1))
            p[chunk] = np.minimum(1.0, 2 * (m + 1) / (permutations + 1))
    return p


def queen_weights(polygons: Sequence[shapely.Geometry] | npt.NDArray[np.object_]) -> sp.csr_matrix:
    """Binary queen-contiguity weights, each polygon its own neighbour (for Gi*).

    Two polygons are neighbours when they share at least one point (an edge or a corner)
    or overlap: boundary layers drawn by hand have slivers, and a sliver is no border.
    """
    geoms = np.asarray(polygons, dtype=object)
    n = geoms.size
    if n == 0:
        return sp.csr_matrix((0, 0))
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    # Every polygon intersects itself; the diagonal is added again for empty geometries.
    rows = np.concatenate([left, np.arange(n)])
    cols = np.concatenate([right, np.arange(n)])
    w = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    w.data[:] = 1.0  # duplicates were summed
    w.sort_indices()
    return w


def fdr(p: Sequence[float] | Floats) -> Floats:
    """Benjamini-Hochberg adjusted p-values (false discovery rate)."""
    # Imported here: scipy.stats is half a second of a server's start (api.main warms it).
    from scipy import stats

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


@dataclass(frozen=True)
class HotSpots:
    """Gi* of every unit of a study area: z, p, FDR-adjusted p and class."""

    z: Floats
    p: Floats
    p_fdr: Floats
    classes: npt.NDArray[np.str_]
    inference: str  # "analytic" or "permutation"

    def significant(self, alpha: float) -> int:
        """Units whose FDR-adjusted p is at most ``alpha``."""
        return int((self.p_fdr <= alpha).sum())


def hot_spots(
    y: Floats, weights: sp.csr_matrix, prepared: GiWeights, permutations: int = 0, seed: int = 0
) -> HotSpots:
    """Gi* of counts ``y`` over a study area: analytic p, or conditional permutations."""
    z, p = gistar(y, prepared)
    if permutations:
        p = gistar_permutations(y, weights, permutations, seed)
    p_fdr = fdr(p)
    return HotSpots(z, p, p_fdr, classify(z, p_fdr), "permutation" if permutations else "analytic")
