"""The console script's entry point: process-wide settings, then the command line."""

from __future__ import annotations


def main() -> None:
    """Run `cuadra`."""
    from ingest import process

    process.at_start()  # before numpy, pyarrow or polars are first imported
    from api.cli import main as run

    run()


if __name__ == "__main__":
    main()
