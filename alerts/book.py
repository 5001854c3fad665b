"""The alerts book: subscriptions, evaluations, alerts and deliveries in one SQLite file.

``<store>/alerts/alerts.sqlite`` (WAL). An evaluation, the alert it fires and its pending
deliveries are written in one transaction, and (subscription, period) is the key of an
evaluation: a rule is evaluated once per subscription and period, and a process killed
mid-evaluation leaves either all of it or none (a rerun does the rest). Deliveries are an
outbox: each is sent until it succeeds or runs out of attempts (then ``dead``).

On a store in a bucket the book is an object there, shared by every server and the ingest
host: each write downloads the current book, makes its change in one transaction, and puts
it back only if nobody changed it meanwhile (the store's conditional edit), else makes it
again on the newer book; servers bring new versions with the store's refresh. Writes are
few (a subscription made or removed, an evaluation run, a delivery settled), so a
whole-file edit costs little.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from store import EditConflict, Store
from store.store import BOOK

T = TypeVar("T")
# A shared book's write is tried this many times against writers elsewhere.
EDIT_ATTEMPTS = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created TEXT NOT NULL, body TEXT NOT NULL,
    feed_token TEXT NOT NULL UNIQUE, active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS evaluations (
    subscription TEXT NOT NULL, period TEXT NOT NULL, snapshot INTEGER NOT NULL,
    fired INTEGER NOT NULL, at TEXT NOT NULL, PRIMARY KEY (subscription, period)
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, subscription TEXT NOT NULL, period TEXT NOT NULL,
    snapshot INTEGER NOT NULL, created TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_subscription ON alerts (subscription, created);
CREATE TABLE IF NOT EXISTS deliveries (
    alert TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    next_at TEXT NOT NULL, last_error TEXT, delivered_at TEXT, PRIMARY KEY (alert, channel)
);
"""
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


def now() -> str:
    """The time, ISO UTC (what the book stores)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Subscription:
    """A place, a selection and a rule, and where to deliver what fires.

    ``place``: ``{"unit": layer, "id": id}``, ``{"circle": [lon, lat, metres]}`` or
    ``{"polygon": GeoJSON}``. ``rule``: ``surge`` (a period above what the unit's history
    predicts), ``hotspot`` (the unit becomes a new or intensifying hot spot; units only) or
    ``any_new`` (any new record of the selection).
    """

    id: str
    owner: str  # the key id
    place: dict[str, Any]
    categories: tuple[str, ...] = ()
    offenses: tuple[str, ...] = ()
    rule: str = "surge"
    interval: str = "month"
    alpha: float = 0.01
    sources: tuple[str, ...] = ()  # the owner's scope when it subscribed
    webhook_url: str | None = None
    webhook_secret: str | None = None
    email: str | None = None
    # Without a key: judged on the public release's cells only, managed with its token.
    public: bool = False
    manage_token: str | None = None
    created: str = field(default_factory=now)
    feed_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def public_view(self) -> dict[str, Any]:
        """What the owner sees (the webhook secret is shown only when created)."""
        out = asdict(self)
        out["webhook_secret"] = None
        out["manage_token"] = None
        return out


_OWN_COLUMNS = ("id", "owner", "created", "feed_token")


def _to_row(sub: Subscription) -> tuple[Any, ...]:
    body = {k: v for k, v in asdict(sub).items() if k not in _OWN_COLUMNS}
    return sub.id, sub.owner, sub.created, json.dumps(body), sub.feed_token


def _from_row(row: sqlite3.Row) -> Subscription:
    body = json.loads(row["body"])
    for name in ("categories", "offenses", "sources"):
        body[name] = tuple(body.get(name, ()))
    own = {"created": row["created"], "feed_token": row["feed_token"]}
    return Subscription(row["id"], row["owner"], **own, **body)


@dataclass(frozen=True)
class Outcome:
    """One evaluation: a subscription's period, whether it fired, and the alert's body."""

    subscription: Subscription
    period: str
    fired: bool
    body: dict[str, Any] | None = None


class Book:
    """The alerts book of a store."""

    def __init__(
        self, store_root: Path, editing: Callable[[str], AbstractContextManager[Path]] | None = None
    ) -> None:
        """The book under ``store_root``; ``editing``: a shared book's conditional edit."""
        self.path = Path(store_root) / BOOK
        self._editing = editing
        self._ready = False

    @classmethod
    def of(cls, store: Store) -> Book:
        """A store's book: shared through the bucket when the store is remote."""
        if store.remote is None:
            return cls(store.root)
        store.refresh(snapshots=False)  # the bucket's current book, before the first read
        return cls(store.root, editing=store.editing)

    def _connect(self) -> sqlite3.Connection:
        # Made on first use: a server over a store that has no alerts writes nothing. A
        # shared book's file is replaced under us (a new version, or none yet): checked
        # every time.
        if not self._ready or self._editing is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=30)) as first:
                first.executescript(SCHEMA)
            self._ready = True
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        # A shared book is uploaded as one file: no write-ahead log beside it.
        con.execute(f"PRAGMA journal_mode={'DELETE' if self._editing else 'WAL'}")
        con.execute("PRAGMA synchronous=FULL")  # an alert written is an alert kept
        return con

    def _write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Apply ``change`` in one transaction; on a shared book, put it back or redo it."""
        if self._editing is None:
            with self.transaction() as con:
                return change(con)
        for attempt in range(EDIT_ATTEMPTS):
            try:
                with self._editing(BOOK), self.transaction() as con:
                    return change(con)
            except EditConflict:
                # Writers elsewhere: apart a little, more each time.
                time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
        raise EditConflict(f"the alerts book changed under {EDIT_ATTEMPTS} attempts: try again")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: one writer at a time)."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def add(self, sub: Subscription) -> Subscription:
        """Store a new subscription."""
        self._write(
            lambda con: con.execute(
                "INSERT INTO subscriptions (id, owner, created, body, feed_token) "
                "VALUES (?, ?, ?, ?, ?)",
                _to_row(sub),
            )
        )
        return sub

    def subscriptions(self, owner: str | None = None, active: bool = True) -> list[Subscription]:
        """Subscriptions (of one owner; None: all), oldest first."""
        sql = "SELECT * FROM subscriptions WHERE active = ?"
        args: list[Any] = [1 if active else 0]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        with closing(self._connect()) as con:
            return [_from_row(r) for r in con.execute(sql + " ORDER BY created, id", args)]

    def get(self, sub_id: str) -> Subscription | None:
        """One active subscription by id."""
        with closing(self._connect()) as con:
            row = con.execute(
                "SELECT * FROM subscriptions WHERE id = ? AND active = 1", [sub_id]
            ).fetchone()
        return _from_row(row) if row else None

    def by_feed(self, token: str) -> Subscription | None:
        """The active subscription a feed token belongs to."""
        with closing(self._connect()) as con:
            row = con.execute(
                "SELECT * FROM subscriptions WHERE feed_token = ? AND active = 1", [token]
            ).fetchone()
        return _from_row(row) if row else None

    def remove(self, sub_id: str) -> bool:
        """Deactivate a subscription (its alerts stay in the book); False if unknown."""
        done = self._write(
            lambda con: (
                con.execute(
                    "UPDATE subscriptions SET active = 0 WHERE id = ? AND active = 1", [sub_id]
                ).rowcount
            )
        )
        return done > 0

    def evaluated(self, periods: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (subscription, period) pairs were evaluated already."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT subscription, period FROM evaluations").fetchall()
        done = {(r[0], r[1]) for r in rows}
        return {p for p in periods if p in done}

    def alerts(self, sub_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """A subscription's alerts, newest first."""
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT * FROM alerts WHERE subscription = ? ORDER BY created DESC, id DESC "
                "LIMIT ?",
                [sub_id, limit],
            ).fetchall()
        return [{**dict(r), "body": json.loads(r["body"])} for r in rows]

    def deliveries(self, status: str | None = None) -> list[dict[str, Any]]:
        """Deliveries (with their alert's body), oldest first."""
        sql = "SELECT d.*, a.body, a.subscription FROM deliveries d JOIN alerts a ON a.id = d.alert"
        args: list[Any] = []
        if status is not None:
            sql += " WHERE d.status = ?"
            args.append(status)
        with closing(self._connect()) as con:
            rows = con.execute(sql + " ORDER BY a.created, d.alert, d.channel", args).fetchall()
        return [{**dict(r), "body": json.loads(r["body"])} for r in rows]

    def record(self, outcomes: list[Outcome], snapshot: int) -> list[str]:
        """Write evaluations, the alerts they fire and their pending deliveries, atomically.

        An evaluation already in the book is skipped with its alert: a rerun (after a crash,
        or a second ``alerts run``) fires nothing twice. Returns the new alerts' ids.
        """
        stamp = now()

        def change(con: sqlite3.Connection) -> list[str]:
            fired: list[str] = []
            for o in outcomes:
                sub = o.subscription
                done = con.execute(
                    "INSERT OR IGNORE INTO evaluations VALUES (?, ?, ?, ?, ?)",
                    [sub.id, o.period, snapshot, int(o.fired), stamp],
                )
                if done.rowcount == 0 or not o.fired:
                    continue
                alert = f"{sub.id}:{o.period}"
                con.execute(
                    "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        alert,
                        sub.id,
                        o.period,
                        snapshot,
                        stamp,
                        json.dumps(o.body, ensure_ascii=False),
                    ],
                )
                channels = [
                    c for c, on in (("webhook", sub.webhook_url), ("email", sub.email)) if on
                ]
                for channel in channels:
                    con.execute(
                        "INSERT INTO deliveries VALUES (?, ?, ?, 0, ?, NULL, NULL)",
                        [alert, channel, PENDING, stamp],
                    )
                fired.append(alert)
            return fired

        return self._write(change)

    def settle(
        self, alert: str, channel: str, status: str, attempts: int, error: str | None, next_at: str
    ) -> None:
        """Record a delivery attempt's outcome."""
        self._write(
            lambda con: con.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, last_error = ?, next_at = ?, "
                "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END "
                "WHERE alert = ? AND channel = ?",
                [status, attempts, error, next_at, status, now(), alert, channel],
            )
        )
