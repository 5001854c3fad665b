"""Shipped reference data: offense taxonomy, source profiles; the default store folder."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_STORE = DATA_DIR / "store"
