"""Alerts end to end: real records, a surge made of them, a webhook receiver and an SMTP
server on 127.0.0.1, a crash in the middle of an evaluation."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedparser
import numpy as np
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from scipy import stats

from alerts.evaluate import last_period
from alerts.model import judge, pooled_dispersion
from api.main import create_app
from api.settings import ServerSettings
from store import Store
from store.keys import KeyRing, Role
from tests.conftest import ROOT, SAMPLE_CSV, add_cdmx_layers


class Receiver:
    """A webhook receiver: every POST's headers and body; answers ``codes`` in turn, then 200."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.codes = list(codes or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((dict(self.headers), body))
                self.send_response(outer.codes.pop(0) if outer.codes else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd's handler: every message received."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    import socket

    with socket.socket() as probe:  # aiosmtpd checks it is up by connecting: a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def _rows() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)
    return frame[pd.to_numeric(frame["latitud"], errors="coerce").notna()]


def _cuadra(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A store of the sample's records up to 2023 (the history), and the sample."""
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile

    tmp = tmp_path_factory.mktemp("alerts")
    frame = _rows()
    before = tmp / "to-2023.csv"
    frame[frame["fecha_hecho"] < "2024-01-01"].to_csv(before, index=False)
    store = Store(tmp / "store")
    add_cdmx_layers(store)
    ingest(store, [str(before)], load_profile("fgj-cdmx"))
    return store.root, frame


def _surge(frame: pd.DataFrame, colonia_name: str, path: Path) -> Path:
    """January 2024 as published, plus the colonia's real records of 2023 repeated into it
    (redated over the month, each copy a distinct record)."""
    january = frame[frame["fecha_hecho"].str.startswith("2024-01")]
    own = frame[(frame["colonia"] == colonia_name) & frame["fecha_hecho"].str.startswith("2023")]
    copies = []
    for k, (_, row) in enumerate(own.iterrows()):
        row = row.copy()
        row["fecha_hecho"] = f"2024-01-{k % 31 + 1:02d}"
        row["anio_hecho"] = "2024"
        copies.append(row)
    pd.concat([january, pd.DataFrame(copies)]).to_csv(path, index=False)
    return path


def test_a_surge_alerts_once_by_webhook_mail_and_feed(
    history: tuple[Path, pd.DataFrame], tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    root, frame = history
    store_root = tmp_path / "store"
    shutil.copytree(root, store_root)
    store = Store(store_root)
    with store.writing():
        _, key = KeyRing(store_root).create(Role.analyst, note="alerts")
    receiver = Receiver()
    box, port = smtp
    env = {**os.environ, "CUADRA_SMTP_HOST": "127.0.0.1", "CUADRA_SMTP_PORT": str(port),
           "CUADRA_ALERT_BACKOFF": "0", "CUADRA_PUBLIC_URL": "http://cuadra.test"}  # fmt: skip
    try:
        # The busiest colonia of 2023, subscribed to by its id (CVEUT).
        colonia = _busiest(store)
        with TestClient(
            create_app(ServerSettings(store=store_root, public_url="http://cuadra.test"))
        ) as c:
            made = c.post(
                "/v1/subscriptions",
                json={"place": {"unit": "colonia", "id": colonia}, "webhook_url": receiver.url,
                      "email": "analista@example.mx"},
                headers={"Authorization": f"Bearer {key}"},
            )  # fmt: skip
            assert made.status_code == 201, made.text
            sub = made.json()
        name = next(n for n in frame["colonia"].unique()
                    if _same(n, _colonia_name(store, colonia)))  # fmt: skip
        surge = _surge(frame, name, tmp_path / "2024-01.csv")
        done = _cuadra(["ingest", str(surge), "--profile", "fgj-cdmx", "--store", str(store_root),
                        "--json"], env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["alerts"] == {"fired": 1, "delivered": 2, "dead": 0}
        again = _cuadra(["alerts", "run", "--store", str(store_root), "--json"], env)
        assert json.loads(again.stdout) == {"fired": 0, "delivered": 0, "dead": 0}
        assert len(receiver.posts) == 1 and len(box.messages) == 1
        headers, body = receiver.posts[0]
        expected = hmac.new(sub["webhook_secret"].encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Cuadra-Signature"] == f"sha256={expected}"
        alert = json.loads(body)
        assert alert["place"] == {
            "unit": "colonia",
            "id": colonia,
            "name": _colonia_name(store, colonia),
        }
        assert alert["period"] == "2024-01" and alert["observed"] > alert["expected"]
        assert alert["snapshot"] == store.snapshot().id and alert["map"].startswith(
            "http://cuadra.test/map?"
        )
        mail = box.messages[0]
        assert mail["To"] == "analista@example.mx" and "aumento de incidentes" in mail["Subject"]
        text = mail.get_payload(decode=True).decode()
        assert "se registraron" in text and "within=colonia%3A" + colonia in text
        # A feed reader follows the subscription.
        with TestClient(
            create_app(ServerSettings(store=store_root, public_url="http://cuadra.test"))
        ) as c:
            feed = c.get(sub["feed"].replace("http://cuadra.test", ""))
        parsed = feedparser.parse(feed.content)
        assert not parsed.bozo and len(parsed.entries) == 1
        assert "aumento de incidentes" in parsed.entries[0].title
    finally:
        receiver.close()


def _colonia_name(store: Store, colonia: str) -> str:
    from store.aggregate import Unit, unit_names

    return str(unit_names(store.snapshot(), Unit("layer", layer="colonia"))[colonia])


def _same(a: str, b: str) -> bool:
    from store.names import fold

    return fold(a) == fold(b)


CRASH = """
import sys, time
from pathlib import Path
import alerts.book as book
flag, store = Path(sys.argv[1]), sys.argv[2]
real = book.Book.transaction
from contextlib import contextmanager
@contextmanager
def stalled(self):
    with real(self) as con:
        yield con
        flag.write_text("in")   # everything written, nothing committed
        time.sleep(120)
book.Book.transaction = stalled
from api.cli import main
sys.argv = ["cuadra", "alerts", "run", "--store", store]
main()
"""


def test_a_crash_mid_evaluation_still_delivers_exactly_once(
    history: tuple[Path, pd.DataFrame], tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    """kill -9 while the evaluation's transaction is open; the rerun sends one of each."""
    from alerts.book import Book, Subscription

    root, frame = history
    store_root = tmp_path / "store"
    shutil.copytree(root, store_root)
    receiver = Receiver(codes=[500])  # the first try fails: a retry, then delivered
    box, port = smtp
    env = {**os.environ, "CUADRA_SMTP_HOST": "127.0.0.1", "CUADRA_SMTP_PORT": str(port),
           "CUADRA_ALERT_BACKOFF": "0"}  # fmt: skip
    try:
        store = Store(store_root)
        colonia = _busiest(store)
        Book(store_root).add(Subscription("crash", "k", {"unit": "colonia", "id": colonia},
                                          webhook_url=receiver.url, webhook_secret="s",
                                          email="a@example.mx"))  # fmt: skip
        name = next(n for n in frame["colonia"].unique() if _same(n, _colonia_name(store, colonia)))
        from ingest.pipeline import ingest
        from ingest.profiles import load_profile

        ingest(
            store, [str(_surge(frame, name, tmp_path / "2024-01.csv"))], load_profile("fgj-cdmx")
        )
        flag = tmp_path / "in-transaction"
        child = subprocess.Popen([sys.executable, "-c", CRASH, str(flag), str(store_root)],
                                 cwd=ROOT, env=env)  # fmt: skip
        deadline = time.time() + 300
        while not flag.exists():
            assert child.poll() is None and time.time() < deadline, "the run ended early"
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert receiver.posts == [] and box.messages == []
        assert Book(store_root).alerts("crash") == []  # nothing half-written
        rerun = _cuadra(["alerts", "run", "--store", str(store_root), "--json"], env)
        assert json.loads(rerun.stdout) == {"fired": 1, "delivered": 2, "dead": 0}, rerun.stderr
        twice = _cuadra(["alerts", "run", "--store", str(store_root), "--json"], env)
        assert json.loads(twice.stdout)["fired"] == 0
        assert len(receiver.posts) == 2  # the 500, then the retry
        assert receiver.posts[0][1] == receiver.posts[1][1] and len(box.messages) == 1
    finally:
        receiver.close()


def _webhook_subscription(book: Any, sub_id: str, colonia: str, receiver: Receiver) -> Any:
    """A colonia subscription of key ``k`` delivered to the local receiver, secret ``s``."""
    from alerts.book import Subscription

    return book.add(Subscription(sub_id, "k", {"unit": "colonia", "id": colonia},
                                 webhook_url=receiver.url, webhook_secret="s"))  # fmt: skip


def _any_new_alert(sub: Any, new_records: int) -> dict[str, Any]:
    """The body of an ``any_new`` alert of period ``p`` in snapshot 1."""
    return {"subscription": sub.id, "rule": "any_new", "period": "p", "snapshot": 1,
            "place": sub.place, "categories": [], "offenses": [], "new_records": new_records,
            "map": "m"}  # fmt: skip


def test_a_dead_letter_after_the_last_try(tmp_path: Path) -> None:
    from alerts.book import Book, Outcome
    from alerts.deliver import Delivery, deliver

    receiver = Receiver(codes=[500, 502, 503])
    try:
        book = Book(tmp_path)
        sub = _webhook_subscription(book, "d", "x", receiver)
        body = _any_new_alert(sub, 1)
        assert book.record([Outcome(sub, "p", True, body)], 1) == ["d:p"]
        assert book.record([Outcome(sub, "p", True, body)], 2) == []  # once per period
        waits: list[float] = []
        assert deliver(book, Delivery(attempts=3, backoff=0.5), waits.append) == {
            "delivered": 0,
            "dead": 1,
        }
        assert waits == [0.5, 1.0] and len(receiver.posts) == 3
        (dead,) = book.deliveries("dead")
        assert dead["attempts"] == 3 and "503" in dead["last_error"]
    finally:
        receiver.close()


def test_the_model_against_scipy() -> None:
    """Negative binomial with variance φλ(1 + 1/n): φ the baseline's variance-to-mean ratio
    (at least 1, and at least the floor), n the baseline values."""
    flat = np.full((1, 9), 10.0)
    v = judge([20], flat, [120], [120])
    phi = 1.0 * (1 + 1 / 9)
    assert v.dispersion[0] == pytest.approx(phi) and v.expected[0] == pytest.approx(10.0)
    size = 10.0 / (phi - 1)
    assert v.p[0] == pytest.approx(stats.nbinom.sf(19, size, 1 / phi)) and v.alert[0]
    assert stats.nbinom.var(size, 1 / phi) == pytest.approx(10.0 * phi)
    wide = np.array([[2.0, 18, 5, 15, 9, 11, 3, 17, 10]])
    v = judge([20], wide, [120], [120])
    mean, var = wide.mean(), wide.var(ddof=1)
    phi = var / mean * (1 + 1 / 9)
    assert v.dispersion[0] == pytest.approx(phi)
    assert v.p[0] == pytest.approx(stats.nbinom.sf(19, mean / (phi - 1), 1 / phi))
    floored = judge([20], flat, [120], [120], dispersion_floor=3.0)
    assert floored.dispersion[0] == pytest.approx(3.0 * (1 + 1 / 9))
    assert floored.p[0] > judge([20], flat, [120], [120]).p[0]  # more spread, less surprise
    trend = judge([20], flat, [240], [120])  # a year that doubled: expect twice as many
    assert trend.expected[0] == pytest.approx(10.0 * 241 / 121)
    assert not judge([4], flat * 0.1, [1], [1]).alert[0]  # below min_count
    short = np.array([[10.0, 10, 10, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]])
    assert judge([40], short, [120], [120]).p[0] == 1.0  # too little history: no verdict
    assert pooled_dispersion(np.vstack([flat, wide])) == pytest.approx(np.median([0.0, var / mean]))


def test_periods() -> None:
    p = last_period(date(2024, 1, 31), "month")
    assert (p.key, p.start, p.end) == ("2024-01", date(2024, 1, 1), date(2024, 2, 1))
    assert p.baseline[:3] == [date(2022, 12, 1), date(2023, 1, 1), date(2023, 2, 1)]
    assert last_period(date(2024, 1, 30), "month").key == "2023-12"
    w = last_period(date(2024, 5, 19), "week")  # a Sunday
    assert (w.key, w.start) == ("2024-W20", date(2024, 5, 13))
    assert last_period(date(2024, 5, 18), "week").key == "2024-W19"
    assert w.baseline[1] == date(2023, 5, 15)  # 52 weeks earlier: a Monday too


def test_the_hotspot_rule_is_the_emerging_route(
    history: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    """A unit alerts exactly when /v1/hotspots/emerging, over the 24 months to the period,
    calls it a new or intensifying hot spot."""
    from alerts.book import Book, Subscription
    from alerts.evaluate import evaluate
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile
    from store.engine import open_engine

    root, frame = history
    store_root = tmp_path / "store"
    shutil.copytree(root, store_root)
    store = Store(store_root)
    colonia = _busiest(store)
    name = next(n for n in frame["colonia"].unique() if _same(n, _colonia_name(store, colonia)))
    ingest(store, [str(_surge(frame, name, tmp_path / "2024-01.csv"))], load_profile("fgj-cdmx"))
    with store.writing():
        _, key = KeyRing(store_root).create(Role.analyst, note="hot")
    with TestClient(create_app(ServerSettings(store=store_root))) as c:
        got = c.get("/v1/hotspots/emerging", params={"unit": "colonia", "interval": "month",
                    "start": "2022-02-01", "end": "2024-02-01"},
                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert got.status_code == 200, got.text
    labels = {r["unit_id"]: r["category"] for r in got.json()["rows"]}
    watched = sorted(labels, key=lambda u: (labels[u] not in ("new_hot", "intensifying_hot"), u))[
        :40
    ]
    book = Book(store_root)
    for i, unit in enumerate(watched):
        book.add(Subscription(f"h{i}", "k", {"unit": "colonia", "id": unit}, rule="hotspot"))
    fired = evaluate(book, store.snapshot(), open_engine())
    expected = {f"h{i}:2024-01" for i, u in enumerate(watched)
                if labels[u] in ("new_hot", "intensifying_hot")}  # fmt: skip
    assert expected and set(fired) == expected  # some do become hot spots; only they alert
    assert len(book.evaluated([(f"h{i}", "2024-01") for i in range(len(watched))])) == len(watched)


def _busiest(store: Store) -> str:
    import duckdb

    files = [str(p) for p in store.data_files(store.require_manifest())]
    (colonia,) = duckdb.execute(
        "SELECT colonia::VARCHAR FROM read_parquet(?) WHERE year(local_date) = 2023 "
        "AND colonia IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", [files]
    ).fetchall()[0]  # fmt: skip
    return str(colonia)


def test_public_subscriptions_are_judged_on_the_release(
    history: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    """Without a key: a whole unit, monthly, managed by its token; its verdict is the
    model's on the months /v1/timeseries publishes for that unit (withheld: unknown)."""
    from alerts.book import Book
    from alerts.evaluate import evaluate, last_period, published_until
    from api.alert_release import release_for
    from api.privacy import rules_from_settings
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile
    from store.engine import open_engine

    root, frame = history
    store_root = tmp_path / "store"
    shutil.copytree(root, store_root)
    store = Store(store_root)
    colonia = _busiest(store)
    name = next(n for n in frame["colonia"].unique() if _same(n, _colonia_name(store, colonia)))
    # Alcaldías: units large enough for the release to publish most of their months.
    from ingest.layers import add_boundary_file
    from tests.conftest import COLONIAS

    add_boundary_file(store, "alcaldia", COLONIAS, id_field="NOMDT", name_field="NOMDT",
                      dissolve=True)  # fmt: skip
    ingest(store, [str(_surge(frame, name, tmp_path / "2024-01.csv"))], load_profile("fgj-cdmx"))
    import duckdb

    files = [str(p) for p in store.data_files(store.require_manifest())]
    ((alcaldia,),) = duckdb.execute(
        "SELECT DISTINCT alcaldia::VARCHAR FROM read_parquet(?) WHERE colonia = ?", [files, colonia]
    ).fetchall()
    settings = ServerSettings(store=store_root)
    with TestClient(create_app(settings)) as c:
        for bad, param in (({"place": {"circle": [-99.13, 19.43, 500]}}, "place"),
                           ({"place": {"unit": "alcaldia", "id": alcaldia}, "rule": "any_new"}, "rule")):  # fmt: skip
            refused = c.post("/v1/subscriptions", json=bad)
            assert refused.status_code == 400 and refused.json()["parameter"] == param
        # A layer added after the months were published: its public figures are read from
        # the layer's first snapshot (publication/tables._holding), not refused.
        year = c.get("/v1/aggregate", params={"unit": "alcaldia", "start": "2023-01-01",
                                              "end": "2024-01-01"})  # fmt: skip
        assert year.status_code == 200 and len(year.json()["rows"]) == 16, year.text
        made = c.post("/v1/subscriptions", json={"place": {"unit": "alcaldia", "id": alcaldia}})
        assert made.status_code == 201, made.text
        sub = made.json()
        token = {"X-Subscription-Token": sub["manage_token"]}
        assert c.get(f"/v1/subscriptions/{sub['id']}").status_code == 404
        assert c.get(f"/v1/subscriptions/{sub['id']}", headers=token).status_code == 200
        assert c.get("/v1/subscriptions").status_code == 403  # listing is for keys
        snap = store.snapshot()
        con = open_engine()
        month = last_period(published_until(snap, con), "month")
        assert month.key == "2024-01"
        months = sorted(
            {*month.baseline, month.start, *_month_range(month.earlier[0], month.recent[1])}
        )
        shown = {}
        for m in months:
            end = date(m.year + m.month // 12, m.month % 12 + 1, 1)
            rows = c.get("/v1/timeseries", params={"unit": "alcaldia", "id": alcaldia,
                         "start": m.isoformat(), "end": end.isoformat()}).json()["rows"]  # fmt: skip
            shown[m] = rows[0]["count"]
    release = release_for(snap, rules_from_settings(settings), con)
    assert release.counts(Book(store_root).get(sub["id"]), months) == shown  # type: ignore[arg-type]
    fired = evaluate(Book(store_root), snap, con, "", release)
    observed = shown[month.start]
    base = [np.nan if shown[m] is None else shown[m] for m in month.baseline]
    known = all(shown[m] is not None for m in months if month.earlier[0] <= m < month.recent[1])
    recent = (
        sum(shown[m] or 0 for m in months if month.recent[0] <= m < month.recent[1]) if known else 0
    )
    earlier = (
        sum(shown[m] or 0 for m in months if month.earlier[0] <= m < month.earlier[1])
        if known
        else 0
    )
    expected = observed is not None and bool(
        judge([observed], [base], [recent], [earlier]).alert[0]
    )
    assert expected and fired == [f"{sub['id']}:2024-01"]  # the surge, seen in the release
    assert len(Book(store_root).evaluated([(sub["id"], "2024-01")])) == 1


def _month_range(lo: date, hi: date) -> list[date]:
    out = []
    while lo < hi:
        out.append(lo)
        lo = date(lo.year + lo.month // 12, lo.month % 12 + 1, 1)
    return out


def test_alerts_test_and_list_on_the_command_line(tmp_path: Path) -> None:
    """`cuadra alerts test` sends one signed test message; `alerts list` shows dead letters."""
    from typer.testing import CliRunner

    from alerts.book import Book, Outcome
    from alerts.deliver import Delivery, deliver
    from api.cli import app

    receiver = Receiver(codes=[200, 500, 500])
    try:
        book = Book(tmp_path)
        sub = _webhook_subscription(book, "t", "15-040", receiver)
        done = CliRunner().invoke(app, ["alerts", "test", "t", "--store", str(tmp_path)])
        assert done.exit_code == 0 and "webhook: sent" in done.output, done.output
        headers, body = receiver.posts[0]
        assert json.loads(body)["test"] is True
        assert (
            headers["X-Cuadra-Signature"]
            == "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
        )
        book.record([Outcome(sub, "p", True, _any_new_alert(sub, 2))], 1)
        deliver(book, Delivery(attempts=2, backoff=0), lambda _: None)
        listed = CliRunner().invoke(app, ["alerts", "list", "--store", str(tmp_path), "--json"])
        (row,) = json.loads(listed.output)["subscriptions"]
        assert row["latest_alert"] == "t:p" and row["undelivered"][0]["status"] == "dead"
        assert row["webhook_secret"] is None  # never shown again
    finally:
        receiver.close()
