"""Serve latency: the same search pipeline in-process and through Ray Serve over HTTP.

What it does: builds (or reuses) the index of the dataset, then runs the queries of the
test split through `engine.pipeline.SearchPipeline`
  1. in-process: strategies, ranker and a local feedback shard called directly;
  2. through Serve: `ltrr up` (unless a service already answers on --port), POST /search.
For each it prints p50 and p99 latency of sequential requests and the throughput with
--clients concurrent clients, then the Serve / in-process ratio. Results are also
written to benchmarks/serve_latency.json.

How to run:  .venv/bin/python benchmarks/serve_latency.py [--requests 300] [--clients 8]
Expect (2 cores): in-process p50 of roughly 10-20 ms (dominated by MiniLM query
encoding); through Serve a few ms to a few tens of ms more per request (one HTTP hop
plus seven handle calls and one actor call), i.e. a ratio around 1.5-3x.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from core.env import configure
from core.paths import StatePaths
from engine.feedback_store import FeedbackShard
from engine.pipeline import SearchPipeline
from ingest.registry import load_dataset
from ranking.model import load_latest
from ranking.model import rank as rank_candidates
from retrievers import Query
from retrievers.index import IndexHandle, build_index
from rl.policy import FixedPolicy


def local_pipeline(index: IndexHandle, state: Path) -> SearchPipeline:
    retrievers = {name: index.load(name) for name in index.strategies}
    catalog = index.catalog()
    model = load_latest(StatePaths(state).ranker_models)
    shard = FeedbackShard(Path(tempfile.mkdtemp(prefix="ltrr-bench-")), 0)

    def fn(r):
        async def call(query: Query, k: int):
            return r.retrieve(query, k)
        return call

    async def rank(query, cands):
        return model.version, rank_candidates(model, query, cands, catalog)

    async def log(rec):
        shard.log_request(rec)

    return SearchPipeline({n: fn(r) for n, r in retrievers.items()}, rank, log,
                          FixedPolicy(list(retrievers), epsilon=0.1, seed=0))


def summary(latencies: list[float], wall_s: float | None = None, n: int = 0) -> dict:
    lat = np.array(latencies)
    out = {"p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2)}
    if wall_s:
        out["throughput_rps"] = round(n / wall_s, 1)
    return out


async def run_local(p: SearchPipeline, queries: list[str], clients: int) -> dict:
    lat = []
    for q in queries:
        t = time.perf_counter()
        await p.search(q, 10)
        lat.append((time.perf_counter() - t) * 1000)
    t0 = time.perf_counter()
    await asyncio.gather(*[p.search(q, 10) for q in queries])  # CPU-bound: concurrency cannot add cores
    return {"sequential": summary(lat),
            "concurrent": {"throughput_rps": round(len(queries) / (time.perf_counter() - t0), 1)}}


async def run_http(base: str, queries: list[str], clients: int) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        lat = []
        for q in queries:
            t = time.perf_counter()
            r = await c.post("/search", json={"query": q, "k": 10})
            r.raise_for_status()
            lat.append((time.perf_counter() - t) * 1000)
        todo = list(queries)
        conc_lat: list[float] = []

        async def client() -> None:
            while todo:
                q = todo.pop()
                t = time.perf_counter()
                (await c.post("/search", json={"query": q, "k": 10})).raise_for_status()
                conc_lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*[client() for _ in range(clients)])
        return {"sequential": summary(lat), "concurrent": summary(conc_lat, time.perf_counter() - t0, len(queries))}


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="builtin:music-demo")
    ap.add_argument("--index", default="indexes/music-demo")
    ap.add_argument("--state", default="state")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    build_index(ds, Path(args.index))
    queries = list(ds.split("test").queries.values())[: args.requests]
    local = asyncio.run(run_local(local_pipeline(IndexHandle.open(Path(args.index)), Path(args.state)), queries,
                                  args.clients))
    print("in-process:", json.dumps(local))
    base = f"http://127.0.0.1:{args.port}"
    started = False
    try:
        httpx.get(f"{base}/healthz", timeout=2).raise_for_status()
    except httpx.HTTPError:
        cmd = [sys.executable, "-m", "ltrr.cli", "up", "--dataset", args.dataset, "--index", args.index,
               "--state", args.state, "--port", str(args.port)]
        subprocess.run(cmd, check=True)
        started = True
    try:
        asyncio.run(run_http(base, queries[:20], 1))  # warm up
        served = asyncio.run(run_http(base, queries, args.clients))
    finally:
        if started:
            subprocess.run([sys.executable, "-m", "ltrr.cli", "down"], check=False)
    print("serve/http:", json.dumps(served))
    ratio = {"p50": round(served["sequential"]["p50_ms"] / local["sequential"]["p50_ms"], 2),
             "p99": round(served["sequential"]["p99_ms"] / local["sequential"]["p99_ms"], 2)}
    result = {"requests": len(queries), "clients": args.clients, "in_process": local, "serve_http": served,
              "serve_over_in_process": ratio}
    Path("benchmarks/serve_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
