"""The process's heap: glibc's thresholds and trimming, numpy's huge-page advice.

One home for the settings an ingest measured (benchmarks/RESULTS.md, "Ingest: where the
time goes") and for the server's default. Only ctypes at import time: ``cuadra`` sets the
default before numpy or pyarrow are loaded. On another libc every call does nothing.
"""

from __future__ import annotations

from functools import lru_cache
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


def release() -> None:
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
    must fault in and zero (a quarter of a million-row ingest's CPU went there), and
    freed pages stay until :func:`release`. On the 1.3 M-row file: 0.8 s less system CPU,
    peak 0.85 → 1.0 GB. From an input's second part on, :func:`for_many_parts` goes back
    to a 1 MiB threshold: over many parts the kept pages fragmented and memory grew with
    the input (ten times the CDMX records: 1.76 GB against 1.6 GB).

    numpy's transparent-huge-page advice is switched off too (the documented switch is
    the NUMPY_MADVISE_HUGEPAGE variable, read at import; this is its runtime form): the
    kernel zeroed whole 2 MB pages for arrays the heap then reused little (0.2 s less
    user and system time, measured).
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
        release()
        _mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        _mallopt(_M_TRIM_THRESHOLD, 128 << 10)
        _for_one_part = False
