"""Reading single Parquet files with the plain file reader.

``pyarrow.parquet.read_table`` goes through ``pyarrow.dataset``, whose import pulls in
pandas: a third of a second, on the critical path of every ``cuadra ingest``. A store
file is one file, never a partitioned dataset, so the file reader is all it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet(path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one Parquet file (all columns, or the named ones, in that order)."""
    return pq.ParquetFile(path).read(columns=list(columns) if columns is not None else None)
