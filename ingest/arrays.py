"""Arrow to numpy without detours."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

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


_pandas_skipped = False


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ImportError("pandas is not used by this process")
        return None


def arrow_without_pandas() -> bool:
    """Tell pyarrow, once per process, that pandas is absent; True if it took.

    pyarrow imports pandas at its first conversion of any Python or numpy object (its
    pandas shim asks whether the object is a Series): a third of a second of held GIL at
    the start of every ingest, which never hands pyarrow a pandas object. The shim tries
    the import once and remembers the outcome; here that one try fails. Only for a
    process that never passes pandas objects to pyarrow (a command-line ingest on the
    local engine): pyarrow would read them as plain sequences. ``to_pandas`` still works,
    as it imports pandas itself.
    """
    global _pandas_skipped
    if "pandas" in sys.modules:
        return _pandas_skipped
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])  # the shim's one try at importing pandas
    finally:
        sys.meta_path.remove(blocker)
    _pandas_skipped = "pandas" not in sys.modules
    return _pandas_skipped


def pandas_skipped() -> bool:
    """Whether :func:`arrow_without_pandas` took in this process."""
    return _pandas_skipped
