"""Users of benchmarks/load.py: the public map's questions, and analysts with a key.

A 429 (rate limit) counts as the service behaving as intended; any other non-2xx answer,
or a refused connection, is a failure.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, task

OFFENSES = ["ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA", "VIOLENCIA FAMILIAR", "FRAUDE"]
YEARS = ["2019", "2020", "2021", "2022", "2023", "2024"]


def _check(response) -> None:  # type: ignore[no-untyped-def]
    if response.status_code == 429:
        # Intended: counted on a line of its own, with the server's Retry-After checked.
        response.request_meta["name"] = "429 rate limited"
        if int(response.headers.get("Retry-After", "0")) < 1:
            response.failure("429 without Retry-After")
        else:
            response.success()
    elif 200 <= response.status_code < 300:
        response.success()
    else:
        response.failure(f"status {response.status_code}: {response.text[:120]}")


class PublicUser(HttpUser):
    """A dashboard or a person on the public map."""

    weight = 4
    wait_time = between(0.05, 0.3)

    @task(4)
    def colonias(self) -> None:
        year = random.choice(YEARS)
        params = {"unit": "colonia", "start": f"{year}-01-01", "end": f"{int(year) + 1}-01-01",
                  "offense": random.choice(OFFENSES)}  # fmt: skip
        with self.client.get("/v1/aggregate", params=params, name="aggregate colonia",
                             catch_response=True) as r:  # fmt: skip
            _check(r)

    @task(2)
    def hexagons(self) -> None:
        year = int(random.choice(YEARS))
        quarter = random.choice([1, 4, 7, 10])
        end = f"{year + 1}-01-01" if quarter == 10 else f"{year}-{quarter + 3:02d}-01"
        start = f"{year}-{quarter:02d}-01"
        params = {"unit": f"h3:{random.choice([7, 8, 9])}", "start": start, "end": end}
        with self.client.get("/v1/aggregate", params=params, name="aggregate h3",
                             catch_response=True) as r:  # fmt: skip
            _check(r)

    @task(1)
    def series(self) -> None:
        params = {"interval": "month", "offense": random.choice(OFFENSES)}
        with self.client.get("/v1/timeseries", params=params, name="timeseries",
                             catch_response=True) as r:  # fmt: skip
            _check(r)


class Analyst(HttpUser):
    """An analyst's script with a key: night-time robberies, and records in a bbox."""

    weight = 1
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['CUADRA_LOAD_KEY']}"

    @task(2)
    def night(self) -> None:
        params = {"unit": "cuadrante", "hour_from": 22, "hour_to": 6,
                  "start": f"{random.choice(YEARS)}-01-01"}  # fmt: skip
        with self.client.get("/v1/aggregate", params=params, name="analyst night",
                             catch_response=True) as r:  # fmt: skip
            _check(r)

    @task(1)
    def records(self) -> None:
        params = {"bbox": "-99.17,19.42,-99.15,19.44", "limit": 200,
                  "start": f"{random.choice(YEARS)}-03-01", "end": f"{random.choice(YEARS)}-04-01"}  # fmt: skip
        with self.client.get("/v1/incidents", params=params, name="analyst records",
                             catch_response=True) as r:  # fmt: skip
            if r.status_code == 400:  # a random end before start: the documented answer
                r.success()
            else:
                _check(r)
