"""Locust: grid members (网格员) on their phones against the running service (loopback only).

Run by bench/run.py (``BENCH_LOCUST_USERS`` names a JSON file of members with their JWTs,
households and the tiles around their grid); headless, bounded in time by ``-t``.

The mix per member, with 1–4 s of thinking between actions: sync the change feed (then keep
the cursor, as the phone does), list today's open tasks, look at the map (tiles around the
grid, revalidated with their ETag as a phone cache would), upload a small batch of visits
(dated in the past so they close no task; removed after the run), look up the chain of a
household, look at my cases.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid

from locust import HttpUser, between, task

_PEOPLE = json.loads(open(os.environ["BENCH_LOCUST_USERS"]).read())  # noqa: SIM115
_NEXT = itertools.count()


class GridMember(HttpUser):
    wait_time = between(1, 4)

    def on_start(self) -> None:
        me = _PEOPLE[next(_NEXT) % len(_PEOPLE)]
        self.me = me
        self.client.headers["Authorization"] = f"Bearer {me['token']}"
        self.cursor = ""
        self.etags: dict[str, str] = {}
        self.rng = random.Random(me["username"])

    @task(4)
    def sync(self) -> None:
        url = "/api/v1/sync/changes/" + (f"?since={self.cursor}" if self.cursor else "")
        with self.client.get(url, name="sync changes", catch_response=True) as r:
            if r.status_code == 200:
                self.cursor = r.json().get("cursor", "")
                r.success()
            else:
                r.failure(f"{r.status_code} {r.text[:120]}")

    @task(3)
    def my_tasks(self) -> None:
        self.client.get("/api/v1/visit-tasks/?mine=1&status=open", name="my tasks")

    @task(4)
    def tiles(self) -> None:
        z, x, y = self.rng.choice(self.me["tiles"])
        layer = self.rng.choice(("buildings", "households", "grids", "cases"))
        x += self.rng.randint(-1, 1)
        y += self.rng.randint(-1, 1)
        url = f"/tiles/{layer}/{z}/{x}/{y}.mvt"
        headers = {"If-None-Match": self.etags[url]} if url in self.etags else {}
        with self.client.get(url, name=f"tile {layer}", headers=headers, catch_response=True) as r:
            if r.status_code in (200, 204, 304):
                if r.headers.get("ETag"):
                    self.etags[url] = r.headers["ETag"]
                r.success()
            else:
                r.failure(f"{r.status_code}")

    @task(1)
    def upload_visits(self) -> None:
        visits = []
        for i in range(3):
            hid, lon, lat = self.rng.choice(self.me["households"])
            visits.append(
                {
                    "client_uuid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                    "household": hid,
                    "client_time": f"2024-03-{1 + i:02d}T10:{self.rng.randrange(60):02d}:00+08:00",
                    "lon": round(lon + self.rng.uniform(-0.0002, 0.0002), 7),
                    "lat": round(lat + self.rng.uniform(-0.0001, 0.0001), 7),
                    "accuracy_m": round(self.rng.uniform(3, 40), 1),
                    "purpose": "bench-locust",
                }
            )
        with self.client.post(
            "/api/v1/visits/batch/",
            json={"visits": visits},
            name="visit upload",
            catch_response=True,
        ) as r:
            if r.status_code == 200 and r.json()["summary"].get("rejected", 0) == 0:
                r.success()
            else:
                r.failure(f"{r.status_code} {r.text[:160]}")

    @task(1)
    def chain(self) -> None:
        hid = self.rng.choice(self.me["households"])[0]
        self.client.get(f"/api/v1/chain/?household={hid}", name="chain of a household")

    @task(1)
    def my_cases(self) -> None:
        self.client.get("/api/v1/cases/?mine=1", name="my cases")
