"""The stall of issue #20: an attacker within the public rate limit against another client.

    python benchmarks/stall.py --store DIR --key ANALYST_KEY

Starts `cuadra serve` without warm-up on a free local port; the attacker asks for 66 empty
years, then 45 concurrent 20-year H3 series; an analyst asks /v1/meta every 100 ms
meanwhile. Prints the attacker's worst request and the analyst's latencies.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx

SERIES = {"unit": "h3:9", "id": "8949958c003ffff", "start": "2005-01-01", "end": "2025-01-01"}


def main() -> int:
    """Run the attack once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CUADRA_WARM_RELEASE": "false"}
    cuadra = str(Path(sys.executable).with_name("cuadra"))  # the console script, as served
    server = subprocess.Popen([cuadra, "serve", "--store", args.store, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        httpx.get(base + "/v1/meta", timeout=120)  # the public names, once
        latencies: list[float] = []
        stop = threading.Event()

        def observe() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                httpx.get(base + "/v1/meta", headers={"X-API-Key": args.key}, timeout=60)
                latencies.append(time.perf_counter() - started)
                time.sleep(0.1)

        worst = [0.0]
        codes: dict[int, int] = {}

        def attack(params: dict[str, str]) -> None:
            started = time.perf_counter()
            status = httpx.get(base + "/v1/timeseries", params=params, timeout=120).status_code
            worst[0] = max(worst[0], time.perf_counter() - started)
            codes[status] = codes.get(status, 0) + 1

        watcher = threading.Thread(target=observe)
        watcher.start()
        for year in range(1900, 1966):
            attack({"start": f"{year}-01-01", "end": f"{year + 1}-01-01"})
        crowd = [threading.Thread(target=attack, args=(SERIES,)) for _ in range(45)]
        for t in crowd:
            t.start()
        for t in crowd:
            t.join()
        time.sleep(5)
        stop.set()
        watcher.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = sorted(latencies)
    print(f"attacker: worst request {worst[0]:.2f} s; statuses {codes}")
    print(f"analyst /v1/meta: n={len(lat)} p50 {1000 * lat[len(lat) // 2]:.0f} ms "
          f"p99 {1000 * lat[max(int(len(lat) * 0.99) - 1, 0)]:.0f} ms max {1000 * lat[-1]:.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
