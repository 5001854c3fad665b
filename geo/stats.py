"""Statistics on counts: period comparison with an exact Poisson test."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from geo.errors import GeoError


def poisson_rate_test(
    count_a: npt.NDArray[np.int64],
    count_b: npt.NDArray[np.int64],
    length_a: float,
    length_b: float,
) -> npt.NDArray[np.float64]:
    """Two-sided p-values that two Poisson counts share one rate (per unit of time).

    The exact conditional test (Przyborowski & Wilenski 1940): given ``n = a + b`` events,
    ``b`` is binomial with ``p = length_b / (length_a + length_b)`` when the rates are
    equal. Periods of different lengths are compared fairly through ``p``.

    Parameters
    ----------
    count_a, count_b
        Counts per unit in periods A and B.
    length_a, length_b
        The periods' lengths (days), both positive.
    """
    # Imported here: scipy.stats is half a second of a server's start, and few ask this.
    from scipy.stats import binomtest

    if length_a <= 0 or length_b <= 0:
        raise GeoError(f"period lengths must be positive, got {length_a} and {length_b}")
    a = np.asarray(count_a, dtype=np.int64)
    b = np.asarray(count_b, dtype=np.int64)
    p0 = length_b / (length_a + length_b)
    out = np.ones(a.shape, dtype=np.float64)
    # Many units share the same (a, b): test each distinct pair once.
    pairs, inverse = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True)
    values = np.array(
        [binomtest(int(bb), int(aa + bb), p0).pvalue if aa + bb > 0 else 1.0 for aa, bb in pairs]
    )
    out[:] = values[inverse.ravel()]
    return out
