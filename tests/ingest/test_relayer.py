"""Layers added after the records: the same units as if they had been there at ingest."""

from __future__ import annotations

from pathlib import Path

from ingest.pipeline import ingest
from ingest.profiles import load_profile
from store import Store
from tests.conftest import SAMPLE_CSV, add_cdmx_layers

COLUMNS = ["source", "incident_id", "colonia", "cuadrante", "street_id"]


def _units(store: Store) -> dict[tuple[str, str], tuple[object, ...]]:
    snap = store.snapshot()
    table = store.read(snap.manifest, COLUMNS)
    rows = zip(*(table.column(c).to_pylist() for c in COLUMNS), strict=True)
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_layers_added_later_assign_what_ingest_assigns(sample_store: Store, tmp_path: Path) -> None:
    later = Store(tmp_path / "later")
    ingest(later, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    add_cdmx_layers(later)  # each layer rewrites the stored records (the relayer)
    got, expected = _units(later), _units(sample_store)
    assert got.keys() == expected.keys() and len(got) > 40_000
    assert got == expected
    # Not vacuous: nearly every record has a colonia and a cuadrante, a third a street
    # (the Geochicas network is partial).
    for position, share in enumerate((0.9, 0.9, 0.25)):
        assert sum(v[position] is not None for v in got.values()) > share * len(got)
