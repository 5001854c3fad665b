"""What a server reads of a new snapshot before anyone asks: a first ask then costs a repeat's.

Every request resolves its offense names against the snapshot's offenses, /v1/meta (a map's
first call) summarises its records, and any range of years reads its span cubes. Each is
built once per snapshot and kept with it; built here, in the background as soon as a
server sees the snapshot, none of them falls on the first person to ask (on ten times
Mexico City's records the offense list alone is a second's scan).
"""

from __future__ import annotations

import duckdb

from store.query import offense_triples, snapshot_summary
from store.snapshot import Snapshot
from store.span_cubes import span_cube

_state: dict[str, str] = {}  # store folder -> "preparing" | "ready" | "failed"


def prepare(snap: Snapshot, con: duckdb.DuckDBPyConnection) -> None:
    """Build a snapshot's offense list, summary and every family's span cube."""
    root = str(snap.root)
    _state[root] = "preparing"
    try:
        offense_triples(snap)
        snapshot_summary(snap)
        for family in sorted({family for f in snap.manifest.files for family in f.cubes}):
            span_cube(snap, family, con)
    except Exception:
        _state[root] = "failed"
        raise
    _state[root] = "ready"


def prepared(root: object) -> str:
    """How far preparing a store's current snapshot got: none, preparing, ready, failed."""
    return _state.get(str(root), "none")
