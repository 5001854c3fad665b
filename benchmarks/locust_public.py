"""Users of benchmarks/workers.py: the public map's traffic, as fast as answers come.

Colonia counts of one offense and year, and heatmap tiles around the centre of Mexico
City (zoom 12-15) of one year. No think time: each user asks again as soon as it is
answered, so throughput is what the server gives at that many users in flight. Any
answer but 200/204 is a failure.
"""

from __future__ import annotations

import random

import mercantile
from locust import HttpUser, constant, task

OFFENSES = ["ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA", "VIOLENCIA FAMILIAR", "FRAUDE",
            "ROBO DE OBJETOS", "AMENAZAS"]  # fmt: skip
YEARS = [2019, 2020, 2021, 2022, 2023, 2024]
CENTRE = (-99.1332, 19.4326)


def _year() -> dict[str, str]:
    year = random.choice(YEARS)
    return {"start": f"{year}-01-01", "end": f"{year + 1}-01-01"}


class PublicMap(HttpUser):
    """A person on the public map (or a dashboard): counts, then tiles."""

    wait_time = constant(0)

    @task(1)
    def colonias(self) -> None:
        params = {"unit": "colonia", "offense": random.choice(OFFENSES), **_year()}
        with self.client.get("/v1/aggregate", params=params, name="colonia",
                             catch_response=True) as r:  # fmt: skip
            r.success() if r.status_code == 200 else r.failure(f"status {r.status_code}")

    @task(3)
    def tiles(self) -> None:
        z = random.randint(12, 15)
        centre = mercantile.tile(*CENTRE, z)
        x, y = centre.x + random.randint(-2, 2), centre.y + random.randint(-2, 2)
        with self.client.get(f"/v1/tiles/heatmap/{z}/{x}/{y}.png", params=_year(),
                             name="heatmap tile", catch_response=True) as r:  # fmt: skip
            r.success() if r.status_code in (200, 204) else r.failure(f"status {r.status_code}")
