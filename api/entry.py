"""The console script's entry point: process-wide settings, then the command line."""

from __future__ import annotations

import os


def _fixed_mmap_threshold() -> None:
    """Large numpy arrays straight from mmap, so that freeing them returns the memory.

    glibc raises its mmap threshold each time a large block is freed, after which big
    arrays come from the heap and stay in the process's RSS: an ingest in parts would
    then hold its earlier parts' high-water mark. Fixing the threshold (1 MiB) stops that.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        ctypes.CDLL(name).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to fix
        return


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
    _fixed_mmap_threshold()
    from api.cli import main as run

    run()


if __name__ == "__main__":
    main()
