"""Simulated users against the running HTTP service.

Each simulated request picks a query of the dataset (Zipf-distributed, so popular
queries repeat), a user from a small pool, calls POST /search, turns the ranked list
into clicks and plays with the click simulator (`ltrr.clicks.ClickModel`, graded
by the dataset's qrels) and sends them to POST /feedback. It counts every event the
service acknowledged and checks that the feedback store's count grew by exactly that.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import numpy as np

from core.model import Dataset
from ltrr.clicks import ClickModel, top_grade


def _stored(stats: dict) -> int:
    return int(stats.get("events", 0))


async def simulate(base_url: str, dataset: Dataset, split: str, n_requests: int, concurrency: int = 4,
                   seed: int = 0, users: int = 50, k: int = 10, zipf: float = 1.1) -> dict:
    qs = dataset.split(split)
    queries = sorted(qs.judged().items())
    if not queries:
        raise ValueError(f"split {split!r} has no judged queries")
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(queries) + 1) ** zipf
    order = rng.permutation(len(queries))
    picks = [queries[order[i]] for i in rng.choice(len(queries), size=n_requests, p=weights / weights.sum())]
    user_ids = [f"user-{int(u)}" for u in rng.integers(0, users, size=n_requests)]
    clicker = ClickModel(seed=seed, max_grade=top_grade(qs.qrels))
    statuses: Counter = Counter()
    latencies: list[float] = []
    sent = acked = dupes = 0
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(n_requests):
        queue.put_nowait(i)

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        before = _stored((await client.get("/stats")).json())

        async def worker() -> None:
            nonlocal sent, acked, dupes
            while not queue.empty():
                i = queue.get_nowait()
                qid, text = picks[i]
                start = time.perf_counter()
                r = await client.post("/search", json={"query": text, "user_id": user_ids[i], "k": k})
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[f"search {r.status_code}"] += 1
                if r.status_code != 200:
                    continue
                body = r.json()
                shown = [it["item_id"] for it in body["results"]]
                events = [{"event_id": uuid.uuid4().hex, "item_id": e.item_id, "type": e.type,
                           "position": e.position} for e in clicker.simulate(shown, qs.qrels.get(qid, {}))]
                if not events:
                    continue
                sent += len(events)
                f = await client.post("/feedback", json={"request_id": body["request_id"], "events": events})
                statuses[f"feedback {f.status_code}"] += 1
                if f.status_code == 202:
                    acked += f.json()["accepted"]
                    dupes += f.json()["duplicates"]

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
        after = _stored((await client.get("/stats")).json())
    lat = np.array(latencies) if latencies else np.zeros(1)
    return {"requests": n_requests, "statuses": dict(statuses), "events_sent": sent, "events_acked": acked,
            "duplicates": dupes, "events_stored_delta": after - before, "counts_match": after - before == acked,
            "search_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "search_p99_ms": round(float(np.percentile(lat, 99)), 2),
            "throughput_rps": round(n_requests / wall, 1)}
