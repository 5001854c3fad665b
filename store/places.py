"""Find a place by name, offline: the names of the store's own units, searched fuzzily.

No external geocoder: the places are the units of the snapshot's layers (every boundary
layer with names, and the streets, one place per street name over all its segments).
Names are folded (case, accents, spaces) and matched with rapidfuzz's weighted ratio, so
``roma nte`` finds ROMA NORTE and ``doctores`` DOCTORES I..V; each hit carries its bbox and
centroid for the map to fly to.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import shapely
from rapidfuzz import fuzz, process

from store.aggregate import Unit, unit_attributes
from store.names import fold
from store.snapshot import Kind, Snapshot

PLACE_INDEXES = Kind("place name indexes", items=4)
# Below 75 a query of nothing real matches an unrelated name (unicornio ~ Copernico: 72);
# a typo of a real one stays above (docotres ~ DOCTORES I: 78).
SCORE_CUTOFF = 75.0


@dataclass(frozen=True)
class Place:
    """One unit (or one street, all its segments) by name."""

    layer: str
    kind: str  # "boundary" or "street"
    ids: tuple[str, ...]  # a boundary unit: one id; a street: its segments' ids
    name: str
    bbox: tuple[float, float, float, float]  # west, south, east, north
    centroid: tuple[float, float]  # lon, lat (a point inside for polygons)


@dataclass(frozen=True)
class PlaceIndex:
    """The places of a snapshot and their folded names, in the same order."""

    places: tuple[Place, ...]
    keys: tuple[str, ...]

    def search(
        self, query: str, limit: int = 10, layer: str | None = None
    ) -> list[tuple[Place, float]]:
        """The best matches for ``query`` (score 0-100, highest first), of ``layer`` if given."""
        key = fold(query)
        if not key:
            return []
        found = process.extract(
            key, self.keys, scorer=fuzz.WRatio, limit=None, score_cutoff=SCORE_CUTOFF
        )
        hits = [(self.places[i], float(score)) for _, score, i in found]
        if layer is not None:
            hits = [(p, s) for p, s in hits if p.layer == layer]
        # Ties: a name that starts with the query first, then shorter names, then by name.
        hits.sort(key=lambda h: (-round(h[1], 1), not fold(h[0].name).startswith(key),
                                 len(h[0].name), h[0].layer, h[0].name))  # fmt: skip
        return hits[:limit]


def place_index(snap: Snapshot) -> PlaceIndex:
    """The snapshot's place index (built once per snapshot)."""
    return snap.memo(PLACE_INDEXES, (), lambda: _build(snap))


def _build(snap: Snapshot) -> PlaceIndex:
    places: list[Place] = []
    for name in snap.boundary_layers:
        places.extend(_units(snap, Unit("layer", layer=name), "boundary"))
    if snap.manifest.street_layer:
        places.extend(_units(snap, Unit("street", layer=snap.manifest.street_layer), "street"))
    return PlaceIndex(tuple(places), tuple(fold(p.name) for p in places))


def _units(snap: Snapshot, unit: Unit, kind: str) -> list[Place]:
    attrs = unit_attributes(snap, unit, geometry=True)
    ids = attrs.column("unit_id").cast("string").to_pylist()
    names = attrs.column("name").to_pylist()
    geoms = shapely.from_wkb(attrs.column("geometry").to_numpy(zero_copy_only=False))
    assert unit.layer is not None
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        if name:
            # A street is one place however many segments draw it (and however its name is
            # spelt: "Lázaro Cárdenas", "Lazaro Cardenas"); a unit is one place.
            groups[fold(str(name)) if kind == "street" else f"{name}\x00{ids[i]}"].append(i)
    out = []
    for members in groups.values():
        spelt = Counter(str(names[i]) for i in members).most_common(1)[0][0]
        shape = shapely.union_all(geoms[members]) if len(members) > 1 else geoms[members[0]]
        west, south, east, north = (float(v) for v in shapely.bounds(shape))
        inside = shapely.point_on_surface(shape)
        out.append(
            Place(
                unit.layer,
                kind,
                tuple(ids[i] for i in members),
                spelt,
                (west, south, east, north),
                (float(shapely.get_x(inside)), float(shapely.get_y(inside))),
            )
        )
    return out
