"""The console script's entry point: process-wide settings, then the command line."""

from __future__ import annotations

import os


def main() -> None:
    """Run `cuadra`."""
    # Ingest runs its own two workers (see ingest/enrich.py); polars' thread pool beside
    # them oversubscribes the cores and costs about 10 % of an ingest's time here. It must
    # be set before polars is first imported.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    from api.cli import main as run

    run()


if __name__ == "__main__":
    main()
