"""1× against 10× interleaved: the ten offenses by colonia, asked of both servers in turn.

benchmarks/aggregates.py times the 1× store, then builds and times the 10× one: minutes
apart, on a machine whose speed moves by a third within an hour. This serves two stores at
once (built as aggregates.py builds them, under ``--work``, unless already there) and
alternates every request between them, so both see the same moments of the machine. One
round of warm-up, then ``--rounds`` rounds of the ten offenses of 2023 with an analyst key.

    .venv/bin/python benchmarks/scale_ab.py --work DIR [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

import httpx
from aggregates import build_store, ten_offenses
from harness import pct, serve, write_redated_profile

from store import Store
from store.keys import KeyRing, Role


def _serve(root: Path) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    """``cuadra serve`` on a store, with an analyst key, once its span cubes are built."""
    store = Store(root)
    with store.writing():
        _, key = KeyRing(store.root).create(Role.analyst, note="scale_ab")
    proc, url = serve(root)
    client = httpx.Client(base_url=url, headers={"X-API-Key": key})
    for _ in range(600):  # store/warm.py prepares the snapshot in the background
        if client.get("/health").json().get("cubes") == "ready":
            return proc, client
        time.sleep(0.2)
    raise SystemExit(f"the server of {root} was not ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="where the two stores are kept")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.environ["CUADRA_WARM_RELEASE"] = "false"
    args.work.mkdir(parents=True, exist_ok=True)
    write_redated_profile(args.work)
    for copies in (1, 10):
        if not (args.work / f"store{copies}" / "manifests").exists():
            build_store(args.work / f"store{copies}", copies, args.work)
    servers = {"1×": _serve(args.work / "store1"), "10×": _serve(args.work / "store10")}
    times: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for round_ in range(args.rounds + 1):
            for offense in ten_offenses():
                q = {"unit": "colonia", "offense": offense, "start": "2023-01-01",
                     "end": "2024-01-01"}  # fmt: skip
                for name, (_, client) in servers.items():
                    t0 = time.perf_counter()
                    client.get("/v1/aggregate", params=q).raise_for_status()
                    if round_:
                        times[name].append((time.perf_counter() - t0) * 1000)
    finally:
        for proc, client in servers.values():
            client.close()
            proc.terminate()
            proc.wait()
    for name, ts in times.items():
        print(f"{name}: p50 {statistics.median(ts):.2f} ms, p90 {pct(ts, 90):.2f} ms ({len(ts)})")
    ratio = statistics.median(times["10×"]) / statistics.median(times["1×"])
    print(f"10× / 1× p50: {ratio:.2f}")


if __name__ == "__main__":
    main()
