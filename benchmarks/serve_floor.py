"""What Ray Serve itself costs for ltrr's call graph, with no work in it.

An HTTP ingress (FastAPI under `@serve.ingress`, as the orchestrator) fans a request out to six
strategy deployments that return nothing, then calls a ranker deployment that returns its input,
then writes the request to a Ray actor, as `/search` does. Every hop is real (the proxy, the
handles, the actor call); none does work. Its latency is the floor that ltrr's own Serve figures
(benchmarks/serve_latency.py) stand on: Serve's sequential p50 can be no lower than the in-process
p50 plus this floor.

Run (starts and stops its own local Ray through `deployments.cluster`, as `ltrr up` does, with
the same Serve environment; nothing else may run a Ray cluster meanwhile; about 2 minutes):

    .venv/bin/python benchmarks/serve_floor.py [--requests 300] [--clients 8] [--haproxy]

Prints sequential p50/p99 and closed-loop throughput of the empty graph, and the CPU per request
by process; writes benchmarks/serve_floor.json (or --out).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
from fastapi import FastAPI
from ray import serve

from core.env import configure
from deployments import cluster
from ltrr.bench import load

STRATEGIES = ("lexical", "dense", "memory", "popularity", "structured", "explore")
api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32)
class Strategy:
    async def retrieve(self, query: str, k: int) -> list:
        return []


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class Ranker:
    async def rank(self, candidates: list) -> list:
        return candidates


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64)
@serve.ingress(api)
class Ingress:
    def __init__(self, ranker, *strategies) -> None:
        import ray

        @ray.remote(num_cpus=0)
        class Log:
            def write(self, record: dict) -> bool:
                return True

        self.ranker, self.strategies, self.log = ranker, strategies, Log.remote()

    @api.post("/search")
    async def search(self, body: dict) -> dict:
        found = await asyncio.gather(*(s.retrieve.remote(body["query"], 10) for s in self.strategies))
        ranked = await self.ranker.rank.remote([c for part in found for c in part])
        await self.log.write.remote({"query": body["query"], "results": ranked})
        return {"results": ranked}


def graph():
    return Ingress.bind(Ranker.bind(), *(Strategy.options(name=f"strategy-{s}").bind() for s in STRATEGIES))


async def measure(base: str, requests: int, clients: int) -> dict:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def send(query: str) -> int:
            async with session.post(f"{base}/search", json={"query": query}) as r:
                await r.read()
                return r.status
        queries = [f"query {i}" for i in range(requests)]
        await load.sequential(send, queries[:20])  # warm up
        meter = load.CpuMeter()
        meter.start()
        seq = await load.sequential(send, queries)
        cpu = meter.stop(seq.statuses.get(200, 0))
        closed = await load.closed(send, queries, clients)
        return {"sequential": seq.summary() | cpu, "closed": closed.summary() | {"clients": clients}}


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--haproxy", action="store_true", help="serve HTTP through Ray's HAProxy (opt-in in ltrr)")
    ap.add_argument("--out", default="benchmarks/serve_floor.json")
    a = ap.parse_args()
    if a.haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    cluster.down()
    cluster.start_ray(2)
    try:
        import ray

        ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": a.port})
        serve.run(graph(), name="floor", route_prefix="/")
        time.sleep(3)
        res = asyncio.run(measure(f"http://127.0.0.1:{a.port}", a.requests, a.clients))
    finally:
        cluster.down()
    env = {k: v for k, v in cluster.ray_env().items() if k.startswith("RAY_SERVE_")}
    out = {"graph": f"ingress -> {len(STRATEGIES)} strategies -> ranker -> log actor, no work",
           "env": env, "when": time.strftime("%Y-%m-%d %H:%M"), **res}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    s, c = res["sequential"], res["closed"]
    print(f"empty graph, sequential: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, CPU {s['total_cpu_ms_per_request']} "
          f"ms/request; {c['clients']} clients: {c['throughput_rps']} req/s")
    print(json.dumps(s["cpu_ms_per_request"]))


if __name__ == "__main__":
    main()
