"""Arrow to numpy without detours."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc


def constant_dictionary(value: str, n: int) -> pa.DictionaryArray:
    """A column holding one string n times, as a one-entry dictionary."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))


def to_bool(mask: pa.Array | pa.ChunkedArray, null: bool = False) -> npt.NDArray[np.bool_]:
    """A boolean Arrow array as a numpy bool array, nulls as ``null``.

    Arrow converts booleans to numpy through its pandas bridge, which imports pandas (a
    third of a second) the first time; as bytes the conversion is a plain copy.
    """
    filled = pc.fill_null(mask, null)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return pc.cast(filled, pa.uint8()).to_numpy(zero_copy_only=False).view(np.bool_)
