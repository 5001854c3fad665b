"""Limits that hold: forwarded headers, caches, error messages, string sizes, public names."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from api.main import create_app
from api.ratelimit import RateLimit
from api.settings import ServerSettings
from store import Store
from store.keys import KeyRing


@pytest.fixture(scope="module")
def client(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as c:
        yield c


def test_keyed_answers_stay_out_of_shared_caches(client: TestClient, analyst_key: str) -> None:
    params = {"unit": "colonia", "start": "2023-01-01", "end": "2024-01-01"}
    keyed = client.get("/v1/aggregate", params=params, headers={"X-API-Key": analyst_key})
    assert keyed.headers["cache-control"] == "private, no-store"
    assert "Authorization, X-API-Key" in keyed.headers["vary"]
    bearer = client.get("/v1/aggregate", params={**params, "format": "csv"},
                        headers={"Authorization": f"Bearer {analyst_key}"})  # fmt: skip
    assert bearer.headers["cache-control"] == "private, no-store"
    public = client.get("/v1/aggregate", params=params)
    assert "Authorization, X-API-Key" in public.headers["vary"]


def test_errors_name_no_path_and_echo_no_long_value(
    client: TestClient, sample_store: Store
) -> None:
    missing = client.get("/v1/aggregate", params={"unit": "colonia", "as_of": 99})
    assert missing.status_code == 404
    assert str(sample_store.root) not in missing.text and "the store" in missing.text
    long = client.get("/v1/aggregate", params={"unit": "colonia", "offense": "X" * 60_000})
    assert long.status_code == 422 and len(long.text) < 500
    schema = client.get("/openapi.json").json()
    offense = next(p for p in schema["paths"]["/v1/aggregate"]["get"]["parameters"]
                   if p["name"] == "offense")  # fmt: skip
    assert offense["schema"]["anyOf"][0]["items"]["maxLength"] == 200


def test_public_meta_names_only_what_is_published(client: TestClient, analyst_key: str) -> None:
    keyed = client.get("/v1/meta", headers={"X-API-Key": analyst_key}).json()["offenses"]
    public = client.get("/v1/meta").json()["offenses"]
    hidden = set(keyed) - set(public)
    assert hidden and set(public) <= set(keyed)
    for offense in sorted(hidden)[:5]:  # each: no whole-area count of any period is shown
        for year in range(2019, 2025):
            body = client.get("/v1/timeseries", params={"offense": offense, "start": f"{year}-01-01",
                                                        "end": f"{year + 1}-01-01"}).json()  # fmt: skip
            assert all(r["count"] is None for r in body.get("rows", []))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_forwarded_headers_do_not_buy_a_new_budget(sample_store: Store) -> None:
    port = _free_port()
    env = {**os.environ, "CUADRA_RATE_PUBLIC": "10/minute", "CUADRA_WARM_RELEASE": "false"}
    cmd = [sys.executable, "-m", "api.cli", "serve", "--store", str(sample_store.root),
           "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        codes = [
            httpx.get(f"http://127.0.0.1:{port}/v1/meta",
                      headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=30).status_code
            for i in range(20)
        ]  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert codes.count(429) >= 10, codes


def test_one_address_cannot_hold_more_than_its_share_in_flight(tmp_path: Path) -> None:
    asyncio.run(_crowd_and_other(tmp_path))


async def _crowd_and_other(tmp_path: Path) -> None:
    """Two requests of one address held open; its third is refused, others are served."""
    gate = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = RateLimit(slow, "1000/minute", "1000/minute", KeyRing(tmp_path), in_flight=2)

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=limited, client=(address, 1234))
        return httpx.AsyncClient(transport=transport, base_url="http://cuadra")

    async with client("198.51.100.1") as crowd, client("198.51.100.2") as other:
        held = [asyncio.create_task(crowd.get("/slow")) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await asyncio.wait_for(crowd.get("/fast"), timeout=1)  # at once, not queued
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "at once" in refused.json()["message"]
        assert (await asyncio.wait_for(other.get("/fast"), timeout=1)).status_code == 200
        assert (await asyncio.wait_for(crowd.get("/v1/tiles/x"), timeout=1)).status_code == 200
        gate.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert (await crowd.get("/fast")).status_code == 200  # its share is back


def test_a_limit_is_shared_by_two_processes_through_redis(
    sample_store: Store, tmp_path: Path
) -> None:
    """Two `cuadra serve` processes on one store and one redis-server (Debian's, started
    here): a key's 6th request in the minute is refused by whichever process gets it."""
    from store.keys import Role

    with sample_store.writing():
        _, key = KeyRing(sample_store.root).create(Role.analyst, note="redis")
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    redis_port, *api_ports = ports
    started = [subprocess.Popen(
        ["/usr/bin/redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]  # fmt: skip
    env = {**os.environ, "CUADRA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "CUADRA_RATE_KEYED": "5/minute", "CUADRA_WARM_RELEASE": "false"}  # fmt: skip
    try:
        for port in api_ports:
            started.append(subprocess.Popen(
                [sys.executable, "-m", "api.entry", "serve", "--store", str(sample_store.root),
                 "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        urls = [f"http://127.0.0.1:{port}" for port in api_ports]
        for url in urls:
            _until_up(url)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(timeout=30, headers=headers) as client:
            codes = [client.get(f"{urls[i % 2]}/v1/meta").status_code for i in range(7)]
        assert codes == [200] * 5 + [429, 429], codes
    finally:
        for proc in started:
            proc.terminate()
            proc.wait()


def _until_up(url: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def test_limits_hold_in_each_process_while_redis_is_down(
    sample_store: Store, analyst_key: str
) -> None:
    """CUADRA_REDIS_URL names a server that is not there: requests are still answered
    (not 500), and a key's 6th request in the minute is still refused, counted here."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    settings = ServerSettings(store=sample_store.root, redis_url=f"redis://127.0.0.1:{closed}/0",
                              rate_keyed="5/minute", warm_release=False)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        headers = {"X-API-Key": analyst_key}
        codes = [client.get("/v1/meta", headers=headers).status_code for _ in range(7)]
    assert codes == [200] * 5 + [429, 429], codes
