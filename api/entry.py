"""The console script's entry point: process-wide settings, then the command line."""

from __future__ import annotations

import os


def _mallopt(mmap_threshold: int) -> None:
    """Fix glibc's M_MMAP_THRESHOLD; nothing on other libcs."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to fix
        return


def _fixed_mmap_threshold() -> None:
    """Large numpy arrays straight from mmap, so that freeing them returns the memory.

    glibc raises its mmap threshold each time a large block is freed, after which big
    arrays come from the heap and stay in the process's RSS: a long-running server would
    then hold its largest request's high-water mark. Fixing the threshold (1 MiB) stops
    that. An ingest sets its own values (:func:`heap_for_ingest`).
    """
    _mallopt(1 << 20)


def heap_for_ingest() -> None:
    """Tune this process for one ingest: glibc's heap, numpy's huge-page advice.

    The heap policy is the ingest's own (``ingest.engines.heap_for_one_part``). numpy's
    transparent-huge-page advice is switched off (the documented switch is the
    NUMPY_MADVISE_HUGEPAGE variable, read at import; this is its runtime form): the
    kernel zeroed whole 2 MB pages for arrays the heap then reused little, a tenth of
    the ingest's CPU (0.2 s less user and system time, measured).
    """
    from numpy._core import multiarray

    from ingest.engines import heap_for_one_part

    heap_for_one_part()
    switch = getattr(multiarray, "_set_madvise_hugepage", None)
    if switch is not None:  # else numpy moved it: the advice stays on, nothing breaks
        switch(False)


_console = False


def console_process() -> bool:
    """True in a process started as the ``cuadra`` command (not a test calling the CLI).

    Process-wide shortcuts (see ``ingest.arrays.arrow_without_pandas``) are taken only
    there: the process ends with the command.
    """
    return _console


def main() -> None:
    """Run `cuadra`."""
    # Set on the module under its import name: with `python -m api.entry` this file
    # runs as __main__, a different module object from the one api.cli imports.
    from api import entry

    entry._console = True
    # Ingest runs its own two workers (see ingest/enrich.py); polars' thread pool beside
    # them oversubscribes the cores and costs about 10 % of an ingest's time here. It must
    # be set before polars is first imported.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    # numpy's OpenBLAS starts a thread per core that spins for a while whenever it wakes;
    # nothing here multiplies dense matrices, and on two cores the spinning cost an
    # ingest 0.3 s of CPU (measured). Also before numpy's first import.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _fixed_mmap_threshold()
    from api.cli import main as run

    run()


if __name__ == "__main__":
    main()
