"""A national deployment on one machine: the store on S3, several server processes."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from ingest.pipeline import ingest
from ingest.profiles import load_profile
from publication import tables
from store import Store
from store.keys import KEYS, KeyRing, Role
from tests.conftest import SAMPLE_CSV, add_cdmx_layers

YEAR = {"start": "2023-01-01", "end": "2024-01-01"}
# Keyed questions over every kind of unit and route; their answers must be byte-identical.
KEYED: list[tuple[str, dict[str, Any]]] = [
    ("/v1/meta", {}),
    ("/v1/aggregate", {"unit": "colonia", **YEAR}),
    ("/v1/aggregate", {"unit": "cuadrante", "category": "robo_transeunte", **YEAR}),
    ("/v1/aggregate", {"unit": "street", **YEAR}),
    ("/v1/aggregate", {"unit": "h3:8", "offense": "VIOLENCIA FAMILIAR", **YEAR}),
    ("/v1/aggregate", {"unit": "h3:9", "within": "circle:-99.1332,19.4326,1500", **YEAR}),
    ("/v1/timeseries", {"interval": "week", "category": "robo_transeunte", **YEAR}),
    (
        "/v1/compare",
        {
            "unit": "colonia",
            "a_start": "2022-01-01",
            "a_end": "2023-01-01",
            "b_start": "2023-01-01",
            "b_end": "2024-01-01",
        },
    ),  # fmt: skip
    ("/v1/hotspots", {"unit": "h3:8", **YEAR}),
    ("/v1/incidents", {"format": "csv", "limit": 500, **YEAR}),
    ("/v1/layers/colonia", {}),
    ("/v1/tiles/heatmap/12/920/1822.png", YEAR),
    ("/v1/tiles/hex/11/460/911.mvt", YEAR),
]
PUBLIC: list[tuple[str, dict[str, Any]]] = [
    ("/v1/aggregate", {"unit": "colonia", **YEAR}),
    ("/v1/aggregate", {"unit": "cuadrante", "category": "robo_transeunte", **YEAR}),
    ("/v1/timeseries", YEAR),
]


@pytest.fixture(scope="module")
def s3_sample(s3_server: str) -> tuple[Store, str]:
    """The sample store built again on S3: the layers, then the 50k sample (snapshot 4)."""
    store = Store(f"{s3_server}/sample-{uuid.uuid4().hex[:6]}")
    add_cdmx_layers(store)
    ingest(store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    with store.editing(KEYS):
        _, key = KeyRing(store.root).create(Role.analyst, note="deployment tests")
    return store, key


def _answers(store: Any, key: str | None, asked: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    headers = {"X-API-Key": key} if key else {}
    out = []
    with TestClient(create_app(ServerSettings(store=store))) as client:
        for path, params in asked:
            for _ in range(120):  # a public table being built answers 503 meanwhile
                got = client.get(path, params=params, headers=headers)
                if got.status_code != 503:
                    break
                time.sleep(0.5)
            assert got.status_code == 200, (path, params, got.text[:300])
            out.append(got.content)
    return out


def test_a_store_on_s3_answers_as_the_same_store_on_disk(
    s3_sample: tuple[Store, str], sample_store: Store, analyst_key: str, tmp_path: Path
) -> None:
    s3_store, s3_key = s3_sample
    assert s3_store.require_manifest().snapshot == sample_store.require_manifest().snapshot
    local = _answers(sample_store.root, analyst_key, KEYED)
    remote = _answers(s3_store.location, s3_key, KEYED)
    for (path, params), a, b in zip(KEYED, local, remote, strict=True):
        at = _diff(a, b)
        assert a == b, (
            path,
            params,
            a[max(0, at - 150) : at + 150],
            b[max(0, at - 150) : at + 150],
        )
    assert _answers(sample_store.root, None, PUBLIC) == _answers(s3_store.location, None, PUBLIC)
    # The public tables were built once and kept in the bucket: another machine reads them
    # and builds none (a build leaves its lock file beside the table).
    tables.clear()
    os.environ["CUADRA_CACHE"], before = str(tmp_path / "other"), os.environ["CUADRA_CACHE"]
    try:
        again = _answers(s3_store.location, None, PUBLIC)
    finally:
        os.environ["CUADRA_CACHE"] = before
    assert again == _answers(sample_store.root, None, PUBLIC)
    release = list((tmp_path / "other").rglob("release/*"))
    assert release and all(p.suffix == ".npz" for p in release), release


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, key: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _is_live_worker(proc: psutil.Process) -> bool:
    # A killed worker stays a zombie until the arbiter reaps it; it is not a worker.
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _workers(supervisor: int, n: int) -> list[int]:
    deadline = time.time() + 60
    while time.time() < deadline:
        kids = [p.pid for p in psutil.Process(supervisor).children() if _is_live_worker(p)]
        if len(kids) == n:
            return kids
        time.sleep(0.2)
    raise RuntimeError("the workers did not start")


@pytest.fixture
def served(s3_server: str, tmp_path: Path) -> Iterator[tuple[str, str, Store, int]]:
    """`cuadra serve --workers 2` on a store in the bucket holding the sample's first half."""
    with gzip.open(SAMPLE_CSV, "rt", encoding="utf-8", newline="") as src:
        header = next(src)
        lines = [next(src) for _ in range(20_000)]
    for name, part in (("first", lines[:10_000]), ("second", lines[10_000:])):
        (tmp_path / f"{name}.csv").write_text(header + "".join(part), encoding="utf-8")
    url = f"{s3_server}/served-{uuid.uuid4().hex[:6]}"
    store = Store(url)
    ingest(store, [str(tmp_path / "first.csv")], load_profile("fgj-cdmx"))
    with store.editing(KEYS):
        _, key = KeyRing(store.root).create(Role.analyst, note="workers")
    port = _port()
    env = {**os.environ, "CUADRA_CACHE": str(tmp_path / "servers"),
           "CUADRA_REFRESH_SECONDS": "0.2", "CUADRA_WARM_RELEASE": "false"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.entry", "serve", "--store", url, "--port", str(port),
         "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while _status(f"{base}/health") != 200:
            assert time.time() < deadline and proc.poll() is None, "the server did not start"
            time.sleep(0.2)
        yield base, key, store, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)  # to the arbiter alone: it stops its workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the server did not stop within 20 s of SIGINT") from None


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except (urllib.error.URLError, OSError):
        return 0


def test_workers_switch_snapshots_whole_and_outlive_a_killed_one(
    served: tuple[str, str, Store, int], tmp_path: Path
) -> None:
    """While two workers answer, snapshot 2 is published and one worker is killed (-9)
    during the switch: every answer is whole (its figures are its snapshot's), the other
    worker never stops answering, and both end on snapshot 2 (the killed one restarted)."""
    base, key, store, supervisor = served
    first_pids = _workers(supervisor, 2)
    ask = f"{base}/v1/aggregate?unit=h3:7"
    seen: list[tuple[int, str, int, int]] = []  # status, snapshot header, body's, total
    errors: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                status, headers, body = _get(ask, key)
            except OSError as exc:  # the request the killed worker held
                errors.append(repr(exc))
                continue
            doc = json.loads(body) if status == 200 else {}
            total = sum(r["count"] for r in doc.get("rows", []))
            seen.append(
                (status, headers.get("x-cuadra-snapshot", ""), doc.get("snapshot", -1), total)
            )

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    for t in pollers:
        t.start()
    time.sleep(1)
    os.environ["CUADRA_CACHE"], before = str(tmp_path / "writer"), os.environ["CUADRA_CACHE"]
    try:
        report = ingest(
            Store(store.location), [str(tmp_path / "second.csv")], load_profile("fgj-cdmx")
        )
    finally:
        os.environ["CUADRA_CACHE"] = before
    assert report.snapshot == 2
    os.kill(first_pids[0], signal.SIGKILL)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(1)
        recent = seen[-20:]
        if len(recent) == 20 and all(s[1] == "2" for s in recent):
            break
    stop.set()
    for t in pollers:
        t.join()
    totals = {1: store.require_manifest(1).rows, 2: store.require_manifest(2).rows}
    assert len(errors) <= 2, errors
    assert seen and all(s[0] == 200 for s in seen), {s[0] for s in seen}
    for _, header, body_snapshot, total in seen:
        assert header == str(body_snapshot) and total == totals[body_snapshot]
    assert {s[2] for s in seen} == {1, 2} and seen[-1][2] == 2
    now = _workers(supervisor, 2)
    assert first_pids[0] not in now and first_pids[1] in now


def _send(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "X-API-Key": key, "Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _eventually(check: Any, seconds: float = 15) -> None:
    deadline = time.time() + seconds
    while not check():
        assert time.time() < deadline, "not seen in time"
        time.sleep(0.2)


def test_subscriptions_made_on_one_server_are_seen_on_another(
    served: tuple[str, str, Store, int], tmp_path: Path
) -> None:
    """Server A (two workers sharing one cache) and server B (another machine's cache) on
    one bucket: a subscription made on A is listed on B, and one removed on B is gone on A."""
    base, key, store, _ = served
    circle = {"place": {"circle": [-99.1332, 19.4326, 800]}}
    made = [_send("POST", f"{base}/v1/subscriptions", key, circle) for _ in range(3)]
    assert all(status == 201 for status, _ in made), made
    ids = [body["id"] for _, body in made]
    os.environ["CUADRA_CACHE"], before = str(tmp_path / "server-b"), os.environ["CUADRA_CACHE"]
    try:
        app = create_app(ServerSettings(store=store.location, refresh_seconds=0.2))
        with TestClient(app, headers={"X-API-Key": key}) as b:

            def listed_on_b() -> set[str]:
                return {s["id"] for s in b.get("/v1/subscriptions").json()["subscriptions"]}

            assert listed_on_b() == set(ids)  # the book B read at start
            assert b.delete(f"/v1/subscriptions/{ids[0]}").status_code == 204
            made_on_b = b.post("/v1/subscriptions", json=circle)
            assert made_on_b.status_code == 201, made_on_b.text
    finally:
        os.environ["CUADRA_CACHE"] = before

    def listed_on_a() -> set[str]:
        status, body = _send("GET", f"{base}/v1/subscriptions", key)
        assert status == 200, body
        return {s["id"] for s in body["subscriptions"]}

    # Every request may reach either of A's workers: each must have brought B's changes.
    now = {*ids[1:], made_on_b.json()["id"]}
    _eventually(lambda: all(listed_on_a() == now for _ in range(6)))


def _diff(a: bytes, b: bytes) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def test_a_snapshot_is_prepared_before_anyone_asks(sample_store: Store) -> None:
    """A server builds the offense list, the summary and every family's span cube of its
    snapshot in the background: the first ask of any range finds them (none is built then)."""
    from store.snapshot import Snapshot
    from store.span_cubes import SPAN_CUBES

    with TestClient(create_app(ServerSettings(store=sample_store.root))) as client:
        deadline = time.time() + 60
        while client.get("/health").json()["cubes"] != "ready":
            assert time.time() < deadline, client.get("/health").json()
            time.sleep(0.1)
        snap: Snapshot = client.app.state.store.snapshot()  # type: ignore[attr-defined]
        families = {family for f in snap.manifest.files for family in f.cubes}
        assert families == {"colonia", "cuadrante", "street", "h3"}

        def not_built() -> None:
            raise AssertionError("a span cube was not prepared")

        for family in families:
            assert snap.memo(SPAN_CUBES, family, not_built).years >= 6
