"""Process-wide tuning, in one place: threads, the heap, imports, and the exit.

Applied at the entry point (``api/entry.py``: :func:`at_start`; ``cuadra ingest``:
:func:`for_console_ingest`) and between an ingest's parts (:func:`trim_heap`,
:func:`for_many_parts`). The settings an ingest measured are in benchmarks/RESULTS.md
("Ingest: where the time goes"). Only the standard library at import time: the entry
point applies its settings before numpy, pyarrow or polars are loaded. On another libc
the heap calls do nothing.
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import os
import sys
import threading
from collections.abc import Sequence
from functools import lru_cache
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_for_one_part = False


@lru_cache(maxsize=1)
def _libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    has = libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")
    return libc if has else None


def _mallopt(option: int, value: int) -> bool:
    libc = _libc()
    return libc is not None and bool(libc.mallopt(option, value))


def fixed_mmap_threshold() -> None:
    """Large arrays straight from mmap, so that freeing them returns the memory.

    glibc raises its mmap threshold each time a large block is freed, after which big
    arrays come from the heap and stay in the process's RSS: a long-running server would
    then hold its largest request's high-water mark. Fixing the threshold (1 MiB) stops
    that. An ingest sets its own values (:func:`for_one_part`).
    """
    _mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def trim_heap() -> None:
    """Hand the heap's free pages back to the system (between an ingest's parts).

    Native libraries (GEOS, PROJ, polars) free into per-thread arenas that glibc keeps;
    without this the process's memory creeps up part after part.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def for_one_part() -> None:
    """Tune the process for an ingest of one large part (process-wide; the console's).

    Arrays up to 16 MiB reuse the heap instead of fresh mmap'd pages, which the kernel
    must fault in and zero, and freed pages stay until :func:`trim_heap`. From an input's
    second part on, :func:`for_many_parts` goes back to a 1 MiB threshold: over many parts
    the kept pages fragmented and memory grew with the input.

    numpy's transparent-huge-page advice is switched off too (the documented switch is
    the NUMPY_MADVISE_HUGEPAGE variable, read at import; this is its runtime form): the
    kernel zeroed whole 2 MB pages for arrays the heap then reused little. What each of
    these saved: benchmarks/RESULTS.md, "Figures behind settings".
    """
    global _for_one_part
    if _mallopt(_M_MMAP_THRESHOLD, 16 << 20) and _mallopt(_M_TRIM_THRESHOLD, 256 << 20):
        _for_one_part = True
    from numpy._core import multiarray

    switch = getattr(multiarray, "_set_madvise_hugepage", None)
    if switch is not None:  # else numpy moved it: the advice stays on, nothing breaks
        switch(False)


def for_many_parts() -> None:
    """Back to glibc's memory-first thresholds if :func:`for_one_part` set its own."""
    global _for_one_part
    if _for_one_part:
        trim_heap()
        _mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        _mallopt(_M_TRIM_THRESHOLD, 128 << 10)
        _for_one_part = False


def at_start() -> None:
    """The console's settings, before numpy, pyarrow or polars are first imported."""
    global _console
    _console = True
    # Ingest runs its own two workers (see ingest/enrich.py); polars' thread pool beside
    # them oversubscribes the cores.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    # numpy's OpenBLAS starts a thread per core that spins for a while whenever it wakes;
    # nothing here multiplies dense matrices (benchmarks/RESULTS.md, "Figures behind
    # settings", for what both cost an ingest).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    fixed_mmap_threshold()


_console = False


def console_process() -> bool:
    """True in a process started as the ``cuadra`` command (not a test calling the CLI).

    Process-wide shortcuts are taken only there: the process ends with the command.
    """
    return _console


def for_console_ingest() -> None:
    """An ingest on the local engine in a ``cuadra`` process: heap and imports for one run."""
    if console_process():
        arrow_without_pandas()  # this process never hands pyarrow a pandas object
        for_one_part()


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
    import pyarrow as pa

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


def warm_pandas() -> None:
    """Import pandas on the side while an ingest reads its input (I/O, GIL released).

    Where pandas was not kept away (:func:`arrow_without_pandas`), pyarrow imports it at
    its first conversion from numpy, a third of a second with the GIL held; done here it
    overlaps reading and hashing.
    """
    if _pandas_skipped:
        return
    threading.Thread(target=importlib.import_module, args=("pandas",), daemon=True).start()


def leave(code: int) -> None:
    """End the process without tearing down the heap: everything was written and fsync'd.

    Freeing a million-row ingest's arrays one by one at interpreter exit takes a quarter
    of a second; the operating system reclaims them at once.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
