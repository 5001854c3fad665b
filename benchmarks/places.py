"""Find a place by name: /v1/places over HTTP on the demo store, and the baseline.

    python benchmarks/places.py --store DIR [--rounds 20]

Queries a person types (abbreviations, missing accents, a typo, a street, a cuadrante),
each ``--rounds`` times over HTTP on 127.0.0.1 (keep-alive; with an analyst key, whose
rate limit allows the run), p50 and p95 over all. The
baseline is the standard library's difflib.get_close_matches over the same folded names,
in this process (what the offense-name suggestions use).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [
    str(_HERE.parent),
    *(p for p in sys.path if Path(p or ".").resolve() != _HERE),
    str(_HERE),
]

import httpx  # noqa: E402
from harness import pct, run, serve  # noqa: E402

from store import Store  # noqa: E402
from store.names import fold  # noqa: E402
from store.places import place_index  # noqa: E402

QUERIES = ["roma nte", "doctores", "insurgentes", "iztapalapa", "C-1.5.6", "lazaro cardenas",
           "benito juares", "coyoacan", "santa maria la ribera", "docotres"]  # fmt: skip


def main() -> int:
    """Time every query over HTTP and with the baseline."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    keys = place_index(Store(args.store).snapshot()).keys
    made = json.loads(run(["keys", "create", "--role", "analyst", "--store", args.store, "--json"]))
    proc, url = serve(Path(args.store))
    ours: list[float] = []
    base: list[float] = []
    try:
        auth = {"Authorization": f"Bearer {made['key']}"}
        with httpx.Client(base_url=url, timeout=30, headers=auth) as client:
            client.get("/v1/places", params={"q": "warm"}).raise_for_status()
            for q in QUERIES:
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    client.get("/v1/places", params={"q": q}).raise_for_status()
                    ours.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    difflib.get_close_matches(fold(q), keys, n=10, cutoff=0.6)
                    base.append((time.perf_counter() - t0) * 1000)
    finally:
        proc.terminate()
        proc.wait()
    print(f"{len(keys):,} places, {len(QUERIES)} queries x {args.rounds}")
    print(
        f"/v1/places over HTTP           p50 {pct(ours, 50):6.2f} ms  p95 {pct(ours, 95):6.2f} ms"
    )
    print(
        f"baseline difflib, in process   p50 {pct(base, 50):6.2f} ms  p95 {pct(base, 95):6.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
