"""The console script's entry point: process-wide settings, then the command line."""

from __future__ import annotations

import os

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
    from ingest import heap

    heap.fixed_mmap_threshold()
    from api.cli import main as run

    run()


if __name__ == "__main__":
    main()
