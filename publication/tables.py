"""The published tables as a server keeps them: built once, cached, warmed ahead.

The tables themselves are :mod:`disclosure.table` (what is published, what is withheld
and the attacker's audit); this module feeds them the store's monthly counts, keeps
them per (store, snapshot, family, year, rules, months published), and builds every
published year in the background when a server starts. docs/privacy.md has the rules.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache

import disclosure
from disclosure import periods, table_file
from disclosure.offenses import Forest
from disclosure.offenses import forest as offense_forest
from disclosure.periods import Period
from disclosure.rules import PublicRules
from disclosure.table import TOTAL, Counts, Family, Nesting, PublishedTable, build_table
from store import monthly
from store.aggregate import Unit
from store.engine import Cursor, open_engine
from store.monthly import monthly_counts, nesting
from store.query import published_offense_triples
from store.snapshot import Kind, Snapshot
from store.snapshots import Manifest
from store.store import Store

log = logging.getLogger("cuadra.publication")

__all__ = [
    "TOTAL",
    "NotReady",
    "Period",
    "published_table",
    "cutoff",
    "default_period",
    "unit_family",
    "forest",
]


# What the release derives from a snapshot's manifests and files (small; kept per snapshot).
FORESTS = Kind("offense forests", items=8)
SOURCES = Kind("published months' snapshots", items=256)
NESTINGS = Kind("layer nestings", items=32)
YEAR_ROWS = Kind("records per year", items=256)


def forest(snap: Snapshot) -> Forest:
    """The offense forest of a snapshot's release (its offenses read once per snapshot).

    With the offenses of files earlier snapshots held: a published month is read from
    the snapshot of its publication day, which may hold an offense this one dropped.
    """
    return snap.memo(FORESTS, (), lambda: offense_forest(published_offense_triples(snap)))


def unit_family(unit: Unit | None) -> str:
    """The family a unit's cells belong to (None: the whole area)."""
    if unit is None:
        return TOTAL
    if unit.kind == "h3":
        return "h3"
    assert unit.layer is not None
    return "street" if unit.kind == "street" else unit.layer


def sources(snap: Snapshot, year: int, until: date, delay_days: int) -> tuple[int, ...]:
    """For each published month of a year, the snapshot its public figures are read from.

    A month is published once, from the store as it stood on its publication day (the
    newest snapshot then that held records of it), or, if none did, from the first
    snapshot that brought them. Later ingests (late reports, revisions) change nothing
    public, so two releases never differ by a handful of records (docs/privacy.md).
    """
    months = periods.months_published(year, until)
    key = (year, months, delay_days)
    return snap.memo(SOURCES, key, lambda: _sources(snap, year, months, delay_days))


def _sources(snap: Snapshot, year: int, months: int, delay_days: int) -> tuple[int, ...]:
    store, snapshot = snap.store, snap.id
    history = [m for s in store.snapshots() if s <= snapshot and (m := store.manifest(s))]
    out = []
    for month in range(1, months + 1):
        first = date(year, month, 1)
        after = periods.add_months(first, 1)
        holding = [
            h
            for h in history
            if any(
                f.min_date < after.isoformat() and f.max_date >= first.isoformat() for f in h.files
            )
        ]
        published = after + timedelta(days=delay_days)
        before = [h for h in holding if date.fromisoformat(h.created_at[:10]) <= published]
        chosen = before[-1] if before else holding[0] if holding else None
        out.append(chosen.snapshot if chosen is not None else snapshot)
    return tuple(out)


def _holding(snap: Snapshot, fam: str, snapshot: int) -> Snapshot:
    """Snapshot ``snapshot``, or the first after it that holds the family's layer.

    A layer added after a month was published has no figures in that month's snapshot:
    they are read from the layer's first snapshot, and stay as they are after it (a later
    ingest changes none of them, as for every published month).
    """
    for seq in range(snapshot, snap.id + 1):
        older = snap if seq == snap.id else snap.store.snapshot(seq)
        layer = older.manifest.street_layer if fam == "street" else fam
        if fam in (TOTAL, "h3") or layer in older.manifest.layers:
            return older
    return snap


def _counts(
    snap: Snapshot,
    fam: str,
    year: int,
    rules: PublicRules,
    con: Cursor,
    months_from: tuple[int, ...],
) -> Counts:
    """The store's counts of a family's published months, each from its own snapshot."""
    parts = []
    for snapshot in sorted(set(months_from)):
        months = tuple(m + 1 for m, s in enumerate(months_from) if s == snapshot)
        older = _holding(snap, fam, snapshot)
        parts.append(monthly_counts(older, fam, year, months, rules.finest_h3, con))
    if not parts:
        none = np.zeros(0, np.int64)
        empty: list[str | None] = []
        return Counts(np.zeros(0, np.uint64) if fam == "h3" else empty, none, none, [], none)
    names = sorted({n for c in parts for n in c.offense_names})
    index = {n: i for i, n in enumerate(names)}
    offense = [
        np.array([index[n] for n in c.offense_names], np.int64)[c.offense]
        if c.offense.size
        else c.offense
        for c in parts
    ]
    units: Any
    if fam == "h3":
        units = np.concatenate([np.asarray(c.units, np.uint64) for c in parts])
    else:
        units = [u for c in parts for u in c.units]
    return Counts(
        units,
        np.concatenate([c.month for c in parts]),
        np.concatenate(offense),
        names,
        np.concatenate([c.count for c in parts]),
    )


def _table(
    snap: Snapshot,
    fam: str,
    year: int,
    rules: PublicRules,
    con: Cursor,
    until: date,
    counts: Counts,
) -> PublishedTable:
    """The published table of one family and year: the store's counts, the core's decision."""
    whole = None
    if fam != TOTAL:
        whole = published_table(snap, TOTAL, year, rules, con, until, wait=True)
    coarse = fam == TOTAL or fam in rules.coarse_layers
    parent = None
    found = snap.memo(NESTINGS, fam, lambda: _parent_layer(snap, fam))
    if found is not None:
        layer, of = found
        table = published_table(snap, layer, year, rules, con, until, wait=True)
        parent = Nesting(table, of)
    return build_table(
        counts,
        forest(snap),
        rules,
        Family(fam, _family_size(snap.manifest, fam), coarse, parent),
        periods.months_published(year, until),
        whole,
    )


def _parent_layer(snap: Snapshot, fam: str) -> tuple[str, dict[str, str]] | None:
    """The coarser boundary layer a layer nests in (colonias in alcaldías), if any."""
    manifest = snap.manifest
    if fam not in manifest.boundary_layers:
        return None
    size = manifest.layers[fam].features
    coarser = sorted(
        (manifest.layers[name].features, name)
        for name in manifest.boundary_layers
        if name != fam and manifest.layers[name].features < size
    )
    con = open_engine(threads=1)
    try:
        for _, name in reversed(coarser):  # the finest coarser layer it nests in
            of = nesting(snap, fam, name, con)
            if of is not None:
                return name, of
    finally:
        con.close()
    return None


def _size_bound(
    snap: Snapshot, fam: str, year: int, months_from: tuple[int, ...], tree: Forest
) -> int:
    """At most this many (unit, month, offense) counts feed a family's table of a year.

    The records of the year in the snapshots its months come from, and, for a family of
    known size, units × months × offenses.
    """
    rows = sum(_year_rows(snap.store.snapshot(s), year) for s in set(months_from))
    size = _family_size(snap.manifest, fam)
    if size is not None:
        offenses = sum(1 for name in tree.names if name.startswith("o:"))
        rows = min(rows, size * len(months_from) * offenses)
    return rows


def _year_rows(snap: Snapshot, year: int) -> int:
    def count() -> int:
        return sum(f.rows for f in snap.files_between(date(year, 1, 1), date(year + 1, 1, 1)))

    return snap.memo(YEAR_ROWS, year, count)


def _family_size(manifest: Manifest, fam: str) -> int | None:
    if fam == TOTAL:
        return 1
    if fam == "h3":
        return None
    layer = manifest.street_layer if fam == "street" else fam
    return int(manifest.layers[layer].features) if layer in manifest.layers else None


class NotReady(Exception):  # noqa: N818 - a state, answered 503
    """A public table too large to build within a request is being built; come back later."""

    def __init__(self, retry_after: int, pending: Future[PublishedTable] | None = None) -> None:
        super().__init__(
            f"the public figures asked for are being prepared; retry in {retry_after} s"
        )
        self.retry_after = retry_after
        self.pending = pending  # the build to wait for, if one is under way


# Tables larger than this many (unit, month, offense) counts are built on the release's own
# worker, never inside a request: a request meets 503 + Retry-After meanwhile.
INLINE_COUNTS = 20_000
# Every family and year of a state's store fits (benchmarks/RESULTS.md, "Figures behind settings").
_CACHE_BYTES = 2 << 30
_tables: LRUCache[tuple[Any, ...], PublishedTable] = LRUCache(
    maxsize=_CACHE_BYTES, getsizeof=lambda t: max(t.nbytes, 4096)
)
_lock = threading.Lock()
_building: dict[tuple[Any, ...], threading.Lock] = {}
_pending: dict[tuple[Any, ...], Future[PublishedTable]] = {}
# One worker process: concurrent large builds queue behind each other, never take threads.
_worker: ProcessPoolExecutor | None = None


def published_table(
    snap: Snapshot,
    fam: str,
    year: int,
    rules: PublicRules,
    con: Cursor,
    until: date,
    wait: bool = False,
) -> PublishedTable:
    """The published table of a family and year, built once per snapshot, rules and cutoff.

    A small table is built in the request; a large one on the release's worker, and
    :class:`NotReady` is raised until it is there (``wait``: build it here, for warm-up).
    A year without records is an empty table, cached at a nominal size.
    """
    key = _key(snap, fam, year, rules, until)
    months_from, tree = key[1], forest(snap)
    with _lock:
        hit = _tables.get(key)
        pending = _pending.get(key)
    if hit is None:
        hit = _stored(snap.store, key)  # built by another process, or before a restart
    if hit is not None:
        return hit
    if pending is not None and not wait:
        raise NotReady(_retry_after(pending), pending)
    bound = _size_bound(snap, fam, year, months_from, tree)
    if bound > INLINE_COUNTS and not wait:
        # Decided from the manifests alone: a request never scans the records of a
        # table it will not build (45 concurrent requests would scan them 45 times).
        with _lock:
            pending = _pending.get(key)
            if pending is None and key not in _tables and not _building_elsewhere(snap, key):
                pending = _submit(key, snap, fam, year, rules, until)
        raise NotReady(max(5, min(bound, 10**6) // 20_000), pending)
    with _lock:
        building = _building.setdefault(key, threading.Lock())
    # One build per key: in this process (the lock), and on this machine (the file lock:
    # the other server processes wait, then read the file it wrote).
    with building, _machine_lock(snap.store, key):
        with _lock:
            hit = _tables.get(key)
        if hit is None:
            hit = _stored(snap.store, key)
        if hit is None:
            counts = _counts(snap, fam, year, rules, con, months_from)
            hit = _table(snap, fam, year, rules, con, until, counts)
            snap.store.put_object(_file_name(key), table_file.dump(hit))
        with _lock:
            _tables[key] = hit
            _building.pop(key, None)
    return hit


RELEASE = "release"  # the store's folder of published tables


def _key(snap: Snapshot, fam: str, year: int, rules: PublicRules, until: date) -> tuple[Any, ...]:
    """What a table is built from, which names it in memory and in the store.

    The snapshots its months are read from, not the current one: a table outlives ingests
    that change none of its months.
    """
    months_from = sources(snap, year, until, rules.delay_days)
    size = _family_size(snap.manifest, fam)
    return (str(snap.root), months_from, fam, year, rules, forest(snap).names, size)


def _file_name(key: tuple[Any, ...]) -> str:
    """Where a table is kept in the store: named by everything it is built from."""
    _, months_from, fam, year, rules, names, size = key
    what = [_code(), list(months_from), fam, year, asdict(rules), list(names), size]
    digest = hashlib.sha256(json.dumps(what).encode("utf-8")).hexdigest()[:32]
    return f"{RELEASE}/{fam}-{year}-{digest}.npz"


@lru_cache(maxsize=1)
def _code() -> str:
    """The digest of the code that decides a table: another version builds its own."""
    files = sorted(Path(disclosure.__file__).parent.glob("*.py"))
    files += [Path(monthly.__file__), Path(__file__)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _stored(store: Store, key: tuple[Any, ...]) -> PublishedTable | None:
    """A table kept in the store, cached here once read; None if none is kept."""
    data = store.get_object(_file_name(key))
    table = table_file.load(data) if data is not None else None
    if table is not None:
        with _lock:
            _tables[key] = table
    return table


@contextmanager
def _machine_lock(store: Store, key: tuple[Any, ...]) -> Iterator[None]:
    """Held while this machine builds a table (an advisory file lock in the store folder)."""
    path = store.root / (_file_name(key) + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _building_elsewhere(snap: Snapshot, key: tuple[Any, ...]) -> bool:
    """Whether another process on this machine is building the table now."""
    path = snap.store.root / (_file_name(key) + ".lock")
    if not path.exists():
        return False
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _retry_after(pending: Future[PublishedTable]) -> int:
    return 5 if pending.running() else 30


def _submit(
    key: tuple[Any, ...], snap: Snapshot, fam: str, year: int, rules: PublicRules, until: date
) -> Future[PublishedTable]:
    """Build a large table in the release's worker process; cache it when it comes back."""
    global _worker
    if _worker is None:
        # A process of its own: a build holds the interpreter for seconds, and in a thread
        # it would slow every request the server answers meanwhile.
        _worker = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_behind
        )
    future = _worker.submit(_build_elsewhere, str(snap.root), snap.id, fam, year, rules, until)
    _pending[key] = future

    def done(f: Future[PublishedTable]) -> None:
        with _lock:
            _pending.pop(key, None)
            if not f.cancelled() and f.exception() is None:
                _tables[key] = f.result()
            else:
                log.error("building a public table failed: %r", f.exception())

    future.add_done_callback(done)
    return future


def _behind() -> None:
    """In the worker process: lower priority, and an end with the server.

    A build can wait for the server's requests; and it is for no one once the server is
    gone, however it ended.
    """
    os.nice(10)
    threading.Thread(target=_end_with, args=(os.getppid(),), daemon=True).start()


def _end_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def shutdown() -> None:
    """Stop the release's worker process, a build under way too (the server is stopping)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
        _pending.clear()
    if worker is None:
        return
    # ProcessPoolExecutor cannot stop a running task; its processes can be ended.
    processes = list(getattr(worker, "_processes", {}).values())
    worker.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        # A process still starting (importing under load) may outlast SIGTERM's delivery.
        process.join(timeout=2)
        if process.is_alive():
            process.kill()


def _build_elsewhere(
    root: str, snapshot: int, fam: str, year: int, rules: PublicRules, until: date
) -> PublishedTable:
    """In the worker process: open the store and build one table."""
    con = open_engine(threads=1)
    try:
        return published_table(
            _opened(root).snapshot(snapshot), fam, year, rules, con, until, wait=True
        )
    finally:
        con.close()


@lru_cache(maxsize=4)
def _opened(root: str) -> Store:
    """The worker's store objects: what one build derives (offense forest, nestings) serves the next."""
    return Store(root)


_warm: dict[str, str] = {}  # store root -> "warming" | "ready" | "failed"


def warm(store: Store, rules: PublicRules, today: date) -> None:
    """Build every published year's table of every family, the default year first.

    A server's first public answers would otherwise wait for them (a minute for H3 cells
    over a year of Mexico City's records). Large tables are built on the release's worker
    process, one at a time, so that warming takes no interpreter time from requests.
    ``status`` tells how far it got.
    """
    if store.manifest() is None:
        return
    snap = store.snapshot()
    manifest = snap.manifest
    root = str(store.root)
    _warm[root] = "warming"
    until = cutoff(rules, today)
    first = default_period(manifest, until).year
    years = sorted({f.year for f in manifest.files if date(f.year, 1, 1) < until}, reverse=True)
    families = [TOTAL, *manifest.boundary_layers, "h3"]
    if manifest.street_layer:
        families.append("street")
    con = open_engine(threads=1)
    try:
        # Every table already kept in the store (built by another process, or before a
        # restart): public answers read them as asked, none waits for a build, so the
        # server is ready now; the loop below only brings them into memory.
        kept = [_file_name(_key(snap, fam, y, rules, until)) for y in years for fam in families]
        if all(store.has_object(name) for name in kept):
            _warm[root] = "ready"
        for year in sorted(years, key=lambda y: y != first):
            for fam in families:
                while True:
                    try:
                        published_table(snap, fam, year, rules, con, until)
                        break
                    except NotReady as building:
                        if building.pending is not None:
                            building.pending.result()  # raises what the build raised
                        else:
                            time.sleep(0.5)  # another server process is building it
        _warm[root] = "ready"
    except Exception:
        _warm[root] = "failed"
        raise
    finally:
        con.close()


def status(root: Any) -> str:
    """How far the background build of a store's release got: none, warming, ready, failed."""
    return _warm.get(str(root), "none")


def clear(kept: Store | None = None) -> None:
    """Forget every cached table (tests; a store rebuilt in place).

    ``kept``: also delete the tables kept in that store's folder (not a remote's objects),
    so that they are built again.
    """
    with _lock:
        _tables.clear()
    _opened.cache_clear()
    if kept is not None:
        for path in (kept.root / RELEASE).glob("*.npz"):
            path.unlink(missing_ok=True)


def cutoff(rules: PublicRules, today: date) -> date:
    """The first day not published: the delay, rounded down to a whole month."""
    return periods.cutoff(rules.delay_days, today)


def default_period(manifest: Manifest, until: date) -> Period:
    """The public default: the last whole calendar year of records that is published."""
    if manifest.files:
        first = date.fromisoformat(min(f.min_date for f in manifest.files))
        last = date.fromisoformat(max(f.max_date for f in manifest.files))
        return periods.default_period(first, last, until)
    return periods.default_period(None, None, until)


def published_names(
    snap: Snapshot, rules: PublicRules, con: Cursor, until: date
) -> tuple[set[str], set[str]]:
    """Offenses and categories with a published whole-area count in some published period.

    An offense whose every record is withheld (one case in a year) is not named to the
    public: its name alone would say that it happened.
    """
    tree = forest(snap)
    shown: set[str] = set()
    for year in sorted({f.year for f in snap.manifest.files if date(f.year, 1, 1) < until}):
        table = published_table(snap, TOTAL, year, rules, con, until, wait=True)
        nodes = np.unique(table.node[~table.hidden])
        shown.update(tree.names[int(n)] for n in nodes)
    offenses = {n[2:] for n in shown if n.startswith("o:")}
    categories = {n[2:] for n in shown if n.startswith("c:")}
    return offenses, categories
