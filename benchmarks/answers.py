"""Record a fixed set of API answers, or compare them with a recording (refactor guard).

    python benchmarks/answers.py --store DIR --key KEY record answers.json
    python benchmarks/answers.py --store DIR --key KEY compare answers.json

Keyed answers must stay byte-identical through a refactor. Public answers may only lose
cells to stronger suppression: every public figure shown after must have been shown,
with the same value, before (``compare`` prints how many cells each request lost);
``--exact`` holds them byte-identical too (a refactor that changes no rule).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

# This folder holds ingest.py, which would shadow the ingest package.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from fastapi.testclient import TestClient  # noqa: E402

from api.main import create_app  # noqa: E402
from api.settings import ServerSettings  # noqa: E402
from publication import tables  # noqa: E402

PERIODS = [("2024-01-01", "2025-01-01"), ("2024-04-01", "2024-07-01"), ("2024-07-01", "2024-08-01")]
CRIMES: list[dict[str, str]] = [
    {},
    {"category": "robo_transeunte"},
    {"offense": "ROBO A CASA HABITACION SIN VIOLENCIA"},
    {"offense": "VIOLENCIA FAMILIAR"},
    {"offense": "ABUSO SEXUAL"},
]
UNITS = ["colonia", "cuadrante", "street", "h3:5", "h3:6", "h3:7", "h3:8", "h3:9"]


def requests() -> list[tuple[str, dict[str, Any]]]:
    """The recorded set: aggregates over units x periods x offense sets, and other routes."""
    out: list[tuple[str, dict[str, Any]]] = [("/v1/meta", {})]
    for unit in UNITS:
        for start, end in PERIODS:
            for crime in CRIMES:
                out.append(("/v1/aggregate", {"unit": unit, "start": start, "end": end, **crime}))
    for crime in CRIMES[:3]:
        out.append(("/v1/timeseries", {"start": "2024-01-01", "end": "2025-01-01", **crime}))
        out.append(("/v1/timeseries", {"unit": "colonia", "id": "07-030", "start": "2024-01-01",
                                       "end": "2025-01-01", **crime}))  # fmt: skip
        out.append(("/v1/compare", {"unit": "colonia", "a_start": "2023-01-01",
                                    "a_end": "2024-01-01", "b_start": "2024-01-01",
                                    "b_end": "2025-01-01", **crime}))  # fmt: skip
    out.append(("/v1/hotspots", {"unit": "colonia", "start": "2024-01-01", "end": "2025-01-01"}))
    # The analyses routes run (KDE grid, Gi* on H3, the space-time cube, near repeat).
    year = {"start": "2024-01-01", "end": "2025-01-01", "offense": "VIOLENCIA FAMILIAR"}
    out.append(("/v1/hotspots", {"unit": "h3:8", "k": 2, **year}))
    out.append(("/v1/hotspots", {"method": "kde", "within": "alcaldia:COYOACAN", **year}))
    out.append(("/v1/hotspots/emerging", {"unit": "colonia", "interval": "month", **year}))
    out.append(("/v1/hotspots/emerging", {"unit": "h3:8", "interval": "week", "window": 2,
                                          "within": "alcaldia:COYOACAN", **year}))  # fmt: skip
    out.append(("/v1/near-repeat", {"within": "alcaldia:COYOACAN", "permutations": 19,
                                    "start": "2024-01-01", "end": "2024-04-01",
                                    "offense": "VIOLENCIA FAMILIAR"}))  # fmt: skip
    out.append(("/v1/incidents", {"limit": 50, "within": "colonia:07-030", **year}))
    out.append(("/v1/concentration", {"unit": "street", **year}))
    out.append(("/v1/concentration", {"unit": "colonia", "start": "2024-01-01",
                                      "end": "2025-01-01"}))  # fmt: skip
    for z, x, y in [(11, 459, 911), (12, 919, 1822), (14, 3679, 7290)]:
        out.append((f"/v1/tiles/hex/{z}/{x}/{y}.mvt", {"start": "2024-01-01", "end": "2025-01-01"}))
        out.append((f"/v1/tiles/heatmap/{z}/{x}/{y}.png",
                    {"start": "2024-01-01", "end": "2025-01-01"}))  # fmt: skip
    return out


def answer(client: TestClient, path: str, params: dict[str, Any], key: str | None) -> Any:
    """One answer: JSON without its volatile parts, or a hash of binary bodies."""
    headers = {"X-API-Key": key} if key else {}
    response = client.get(path, params=params, headers=headers)
    kind = response.headers.get("content-type", "")
    if "json" not in kind:
        return {
            "status": response.status_code,
            "sha256": hashlib.sha256(response.content).hexdigest(),
        }
    body = response.json()
    if isinstance(body, dict):
        for volatile in ("elapsed_ms", "generated_at", "release"):
            body.pop(volatile, None)
    return {"status": response.status_code, "body": body}


def shown_cells(body: Any) -> dict[str, Any]:
    """The figures a public aggregate shows, by unit id."""
    if not isinstance(body, dict) or "rows" not in body:
        return {}
    return {str(r.get("unit_id")): r.get("count") for r in body["rows"]}


def figures_changed(was: Any, now: Any) -> dict[str, Any]:
    """Totals and outside counts that changed other than by being withheld."""
    return {
        name: now.get(name)
        for name in ("total", "unassigned")
        if isinstance(now, dict) and now.get(name) is not None and now.get(name) != was.get(name)
    }


def main() -> int:
    """Record or compare."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("action", choices=["record", "compare"])
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--exact", action="store_true", help="public answers too must be byte-identical"
    )
    args = parser.parse_args()
    # Build every public table in the request, as a warmed server would have it ready.
    tables.INLINE_COUNTS = 10**9
    with TestClient(
        create_app(
            ServerSettings(
                store=args.store, rate_public="100000/minute", rate_keyed="100000/minute"
            )
        )
    ) as client:
        got = {
            json.dumps([path, params, role], sort_keys=True): answer(
                client, path, params, args.key if role == "analyst" else None
            )
            for path, params in requests()
            for role in ("public", "analyst")
        }
    if args.action == "record":
        args.file.write_text(json.dumps(got, sort_keys=True, ensure_ascii=False))
        print(f"recorded {len(got)} answers")
        return 0
    before = json.loads(args.file.read_text())
    changed = lost = 0
    for name, now in got.items():
        was = before.get(name)
        role = json.loads(name)[2]
        if was == now:
            continue
        if role == "public" and not args.exact and was and was["status"] == now["status"] == 200:
            old, new = shown_cells(was.get("body")), shown_cells(now.get("body"))
            if isinstance(now.get("body"), dict) and "rows" in now["body"]:
                extra = {u: v for u, v in new.items() if old.get(u) != v}
                extra.update(figures_changed(was.get("body"), now.get("body")))
                if not extra:
                    lost += len(old) - len(new)
                    continue
        changed += 1
        print("DIFFERS:", name, json.dumps(was)[:300], "->", json.dumps(now)[:300])
    print(f"{len(got)} answers: {changed} differ beyond withheld cells; {lost} public cells "
          "newly withheld")  # fmt: skip
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
