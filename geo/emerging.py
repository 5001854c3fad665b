"""Emerging hot spots: space-time Gi*, Mann-Kendall trends and Esri's pattern categories.

A space-time cube holds one count per (unit, time step). Each bin gets a Gi* z-score over
its space-time neighbourhood (the unit's spatial neighbours in the same time step and in
the ``window`` steps before it), significance from Benjamini-Hochberg adjusted p-values
over the whole cube, and each unit a Mann-Kendall trend of its z-scores. The category of a
unit follows from these alone (:func:`categorize`); the rules are those of Esri's
Emerging Hot Spot Analysis, with the order in which they are tried written out in
docs/hotspots.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy import special

from geo.errors import GeoError
from geo.hotspots import fdr, gistar
from geo.types import Floats

PERSISTENT_SHARE = 0.9
CATEGORIES = (
    "new",
    "consecutive",
    "intensifying",
    "persistent",
    "diminishing",
    "sporadic",
    "oscillating",
    "historical",
)
LABELS = ("no_pattern", *(f"{c}_{side}" for side in ("hot", "cold") for c in CATEGORIES))


def spacetime_weights(spatial: sp.spmatrix, steps: int, window: int = 1) -> sp.csr_matrix:
    """Binary weights over a cube of ``steps`` slices of the units of ``spatial``.

    Bin (t, i) sits at row ``t * n + i``; its neighbours are the spatial neighbours of i
    (itself included) in steps t - window … t.
    """
    if steps < 1 or window < 0:
        raise GeoError(f"need steps >= 1 and window >= 0, got {steps} and {window}")
    # Lower band: step t sees steps t - window … t, never the future.
    band = sp.diags(
        [np.ones(steps - d) for d in range(min(window, steps - 1) + 1)],
        [-d for d in range(min(window, steps - 1) + 1)],
        shape=(steps, steps),
    )
    w = sp.csr_matrix(sp.kron(band, sp.csr_matrix(spatial, dtype=np.float64), format="csr"))
    w.data[:] = 1.0
    w.sort_indices()
    return w


@dataclass(frozen=True)
class Trend:
    """Mann-Kendall trend test of each row of a matrix of series."""

    s: npt.NDArray[np.int64]  # Kendall's S
    tau: Floats  # S / (n (n - 1) / 2), Mann-Kendall's tau (tau-a)
    z: Floats  # normal score with continuity correction
    p: Floats  # two-sided


def mann_kendall(series: npt.ArrayLike) -> Trend:
    """Mann-Kendall trend test per row (Mann 1945; Kendall 1975), ties corrected.

    S = sum over i < j of sign(x_j - x_i); var S = [n(n-1)(2n+5) - sum t(t-1)(2t+5)] / 18
    over the tie groups t of the row; z = (S - sign S) / sqrt(var S); p two-sided normal.
    The same as pymannkendall's ``original_test``.
    """
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    rows, n = x.shape
    if n < 3:
        raise GeoError(f"a trend needs at least 3 time steps, got {n}")
    upper = np.triu_indices(n, 1)
    diffs = x[:, upper[1]] - x[:, upper[0]]
    s = np.sign(diffs).sum(axis=1).astype(np.int64)
    ties = np.zeros(rows)
    ordered = np.sort(x, axis=1)
    # Tie groups: runs of equal values in each sorted row.
    starts = np.ones((rows, n), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    for r in np.flatnonzero(~starts.all(axis=1)):
        t = np.diff(np.append(np.flatnonzero(starts[r]), n)).astype(np.float64)
        ties[r] = (t * (t - 1) * (2 * t + 5)).sum()
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, (s - np.sign(s)) / np.sqrt(var), 0.0)
    p = special.erfc(np.abs(z) * np.sqrt(0.5))
    return Trend(s, s / (n * (n - 1) / 2), z, p)


def categorize(
    z: npt.ArrayLike,
    significant: npt.ArrayLike,
    trend_s: npt.ArrayLike,
    trend_p: npt.ArrayLike,
    alpha: float = 0.05,
) -> npt.NDArray[np.str_]:
    """The emerging hot spot category of each unit (row) of a cube of Gi* results.

    ``z`` and ``significant`` are units × steps (oldest step first); ``trend_s`` and
    ``trend_p`` the Mann-Kendall S and p of each unit's z series. Rules, tried in this
    order for the side (hot, or cold with signs reversed) of the final step:

    - final step not significant: ``historical`` when at least 90 % of the steps were
      significant on one side, else ``no_pattern``;
    - at least 90 % of steps on the final step's side: ``intensifying`` with a
      significant trend toward that side, ``diminishing`` with one away from it, else
      ``persistent``;
    - ever significant on the other side: ``oscillating``;
    - the final step is the only significant one: ``new``;
    - the final steps are one uninterrupted run of at least two, and no earlier step was
      significant: ``consecutive``;
    - otherwise (an on-again, off-again history): ``sporadic``.
    """
    zs = np.atleast_2d(np.asarray(z, dtype=np.float64))
    sig = np.atleast_2d(np.asarray(significant, dtype=bool))
    if zs.shape != sig.shape:
        raise GeoError(f"z is {zs.shape}, significant {sig.shape}")
    s = np.asarray(trend_s, dtype=np.float64)
    tp = np.asarray(trend_p, dtype=np.float64)
    steps = zs.shape[1]
    hot = sig & (zs > 0)
    cold = sig & (zs < 0)
    labels = np.full(zs.shape[0], "no_pattern", dtype="<U20")
    for i in range(zs.shape[0]):
        labels[i] = _category(hot[i], cold[i], s[i], tp[i], alpha, steps)
    return labels


def _category(
    hot: npt.NDArray[np.bool_],
    cold: npt.NDArray[np.bool_],
    s: float,
    p: float,
    alpha: float,
    steps: int,
) -> str:
    if not (hot[-1] or cold[-1]):
        if hot.sum() >= PERSISTENT_SHARE * steps:
            return "historical_hot"
        if cold.sum() >= PERSISTENT_SHARE * steps:
            return "historical_cold"
        return "no_pattern"
    side, same, other, toward = ("hot", hot, cold, 1.0) if hot[-1] else ("cold", cold, hot, -1.0)
    if same.sum() >= PERSISTENT_SHARE * steps:
        if p <= alpha and s * toward > 0:
            return f"intensifying_{side}"
        if p <= alpha and s * toward < 0:
            return f"diminishing_{side}"
        return f"persistent_{side}"
    if other.any():
        return f"oscillating_{side}"
    if same.sum() == 1:
        return f"new_{side}"
    run = steps - int(np.flatnonzero(~same)[-1]) - 1  # the final run's length
    if same[: steps - run].sum() == 0:
        return f"consecutive_{side}"
    return f"sporadic_{side}"


@dataclass(frozen=True)
class Emerging:
    """Space-time Gi* of a cube and the category of each unit."""

    z: Floats  # units × steps
    p_fdr: Floats  # units × steps
    trend: Trend
    labels: npt.NDArray[np.str_]


def emerging(
    counts: npt.ArrayLike, spatial: sp.spmatrix, window: int = 1, alpha: float = 0.05
) -> Emerging:
    """Emerging hot spot analysis of a units × steps cube of counts (oldest step first).

    Gi* runs once over the whole cube (mean and spread of every bin, so a step busier
    than the others shows as hot everywhere, as in Esri's tool); a bin is significant
    when its Benjamini-Hochberg adjusted p is at most ``alpha``.
    """
    cube = np.asarray(counts, dtype=np.float64)
    if cube.ndim != 2:
        raise GeoError("counts must be units × steps")
    units, steps = cube.shape
    if steps < 3:
        raise GeoError(f"emerging hot spots need at least 3 time steps, got {steps}")
    w = spacetime_weights(spatial, steps, window)
    # Bins are laid out step by step (row t * units + i): transpose, then flatten.
    z, p = gistar(cube.T.ravel(), w)
    z_cube = z.reshape(steps, units).T
    p_fdr = fdr(p).reshape(steps, units).T
    # Equal z-scores summed in another order differ in the last bits: ties, not a trend.
    trend = mann_kendall(np.round(z_cube, 9))
    labels = categorize(z_cube, p_fdr <= alpha, trend.s, trend.p, alpha)
    return Emerging(z_cube, p_fdr, trend, labels)
