"""Small array helpers shared by the cores (no spatial meaning of their own)."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]


def ranges(starts: Ints, lengths: Ints) -> Ints:
    """Concatenated ``range(start, start + length)`` for each pair."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return (offsets + np.arange(total)).astype(np.int64)


K = TypeVar("K", bound=np.integer[Any])


def group_sum(
    keys: npt.NDArray[K], values: npt.NDArray[np.int64] | npt.NDArray[np.float64]
) -> tuple[npt.NDArray[K], Ints]:
    """Distinct keys (sorted, of the keys' dtype) and the integer sum of ``values`` per key."""
    distinct, inverse = np.unique(keys, return_inverse=True)
    total = np.bincount(inverse, weights=values, minlength=distinct.size)
    return distinct, np.rint(total).astype(np.int64)
