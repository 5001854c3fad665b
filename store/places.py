"""Find a place by name, offline: the names of the store's own units, searched fuzzily.

No external geocoder: the places are the units of the snapshot's layers (every boundary
layer with names, and the streets, one place per street name over all its segments).
Names are folded (case, accents, spaces) and matched with rapidfuzz's weighted ratio, so
``roma nte`` finds ROMA NORTE and ``doctores`` DOCTORES I..V; each hit carries its bbox and
centroid for the map to fly to.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
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
    """The places of a snapshot and their folded names, in the same order.

    ``grams``: for each trigram of a name, the places whose name has it. A query is scored
    only against the places sharing one of its trigrams (the weighted ratio over every name
    cost 4.5 ms; a name that shares no trigram with the query scores far below the cutoff).
    """

    places: tuple[Place, ...]
    keys: tuple[str, ...]
    grams: dict[str, npt.NDArray[np.int32]] = field(default_factory=dict)

    def candidates(self, key: str) -> list[int]:
        """Indices of the places sharing a trigram with ``key`` (all for a short key)."""
        found = [self.grams[g] for g in trigrams(key) if g in self.grams]
        if len(key) < 3 or not found:
            return list(range(len(self.keys))) if len(key) < 3 else []
        return [int(i) for i in np.unique(np.concatenate(found))]

    def search(
        self, query: str, limit: int = 10, layer: str | None = None
    ) -> list[tuple[Place, float]]:
        """The best matches for ``query`` (score 0-100, highest first), of ``layer`` if given."""
        key = fold(query)
        if not key:
            return []
        pool = self.candidates(key)
        choices = [self.keys[i] for i in pool]
        found = process.extract(
            key, choices, scorer=fuzz.WRatio, limit=None, score_cutoff=SCORE_CUTOFF
        )
        hits = [(self.places[pool[i]], float(score)) for _, score, i in found]
        if layer is not None:
            hits = [(p, s) for p, s in hits if p.layer == layer]
        hits.sort(key=lambda h: _rank(h, key))
        return hits[:limit]


def _rank(hit: tuple[Place, float], key: str) -> tuple[float, bool, int, str, str]:
    # Ties: a name that starts with the query first, then shorter names, then by name.
    place, score = hit
    return (
        -round(score, 1),
        not fold(place.name).startswith(key),
        len(place.name),
        place.layer,
        place.name,
    )


def place_index(snap: Snapshot) -> PlaceIndex:
    """The snapshot's place index (built once per snapshot)."""
    return snap.memo(PLACE_INDEXES, (), lambda: _build(snap))


def _build(snap: Snapshot) -> PlaceIndex:
    places: list[Place] = []
    for name in snap.boundary_layers:
        places.extend(_units(snap, Unit("layer", layer=name), "boundary"))
    if snap.manifest.street_layer:
        places.extend(_units(snap, Unit("street", layer=snap.manifest.street_layer), "street"))
    keys = tuple(fold(p.name) for p in places)
    posting: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        for gram in trigrams(key):
            posting[gram].append(i)
    grams = {g: np.asarray(ids, np.int32) for g, ids in posting.items()}
    return PlaceIndex(tuple(places), keys, grams)


def trigrams(key: str) -> set[str]:
    """The three-letter runs of a folded name, words padded with a space at both ends."""
    out: set[str] = set()
    for word in key.split():
        padded = f" {word} "
        out.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return out


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
