"""The stall of issue #20: an attacker within the public rate limit against another client.

    python benchmarks/stall.py --store DIR --key ANALYST_KEY

Starts `cuadra serve` without warm-up on a free local port; the attacker asks for 66 empty
years, then 45 concurrent 20-year H3 series (sent at once); an analyst, a process of
its own, asks /v1/meta every 100 ms meanwhile. Prints the attacker's worst request and the analyst's latencies.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

SERIES = {"unit": "h3:9", "id": "8949958c003ffff", "start": "2005-01-01", "end": "2025-01-01"}


def main() -> int:
    """Run the attack once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--server-log", type=Path, help="keep the server's log here")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CUADRA_WARM_RELEASE": "false"}
    cuadra = str(Path(sys.executable).with_name("cuadra"))  # the console script, as served
    log = args.server_log.open("w") if args.server_log else subprocess.DEVNULL
    server = subprocess.Popen([cuadra, "serve", "--store", args.store, "--port", str(port)],
                              env=env, stdout=log, stderr=log)  # fmt: skip
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        httpx.get(base + "/v1/meta", timeout=120)  # the public names, once
        httpx.get(base + "/v1/meta", headers={"X-API-Key": args.key}, timeout=120)  # the key's
        # The other client is a process of its own, as it would be: in this one it would
        # wait for the interpreter behind the attacker's 45 threads.
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        results: Any = ctx.Queue()
        watcher = ctx.Process(target=observe, args=(base, args.key, stop, results))
        worst = [0.0]
        codes: dict[int, int] = {}

        barrier = threading.Barrier(45)

        client = httpx.Client(base_url=base, timeout=120,
                              limits=httpx.Limits(max_connections=64))  # fmt: skip

        def attack(params: dict[str, str], together: bool = False) -> None:
            if together:
                barrier.wait()  # 45 concurrent copies, sent at once
            started = time.perf_counter()
            status = client.get("/v1/timeseries", params=params).status_code
            worst[0] = max(worst[0], time.perf_counter() - started)
            codes[status] = codes.get(status, 0) + 1

        watcher.start()
        for year in range(1900, 1966):
            attack({"start": f"{year}-01-01", "end": f"{year + 1}-01-01"})
        crowd = [threading.Thread(target=attack, args=(SERIES, True)) for _ in range(45)]
        for t in crowd:
            t.start()
        for t in crowd:
            t.join()
        time.sleep(5)
        stop.set()
        latencies = results.get(timeout=60)
        watcher.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = sorted(latencies)
    print(f"attacker: worst request {worst[0]:.2f} s; statuses {codes}")
    print(f"analyst /v1/meta: n={len(lat)} p50 {1000 * lat[len(lat) // 2]:.0f} ms "
          f"p99 {1000 * lat[max(int(len(lat) * 0.99) - 1, 0)]:.0f} ms max {1000 * lat[-1]:.0f} ms")  # fmt: skip
    return 0


def observe(base: str, key: str, stop: Any, results: Any) -> None:
    """The other client: /v1/meta with a key every 100 ms until told to stop."""
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": key}) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/v1/meta")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.1)
    results.put(latencies)


if __name__ == "__main__":
    sys.exit(main())
