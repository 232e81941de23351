"""Serve latency and load: the same search service in-process and through Ray Serve over HTTP.

What it does: builds (or reuses) the dataset's index, trains a ranker from the train
split's qrels into a fresh state directory (unless --no-ranker), then runs the test
split's queries through `engine.search_service.SearchService`, the object the
orchestrator deployment serves, with the serve config's policy (fixed plan, epsilon and
shadow exploration as deployed):

  1. in-process: strategies, ranker and two local feedback shards called directly in this
     process (dense query encoding micro-batched across concurrent requests);
  2. through Serve, once per --variants entry: `ltrr up` with that variant's Ray Serve
     environment (e.g. RAY_SERVE_THROUGHPUT_OPTIMIZED=1), POST /search over HTTP, `ltrr down`.

Each target gets the same phases (ltrr/bench/load.py): sequential requests (p50/p99),
--clients closed-loop clients (throughput), and an open-loop load curve at --rates (each
for --duration s; p50, p99, errors, and the CPU each process kind spent per request). The
knee is the highest rate whose p99 stays under 200 ms with no error. Results go to
--out (JSON) and a plot of latency against offered load (PNG beside it).

How to run (2 cores; nothing else running, no service on --port):
    .venv/bin/python benchmarks/serve_latency.py                      # every phase and variant, ~15 min
    .venv/bin/python benchmarks/serve_latency.py --variants default --rates 5,10,20
Expect: in-process p50 in the tens of ms (MiniLM query encoding is the largest part);
through Serve a few ms more per request and a lower throughput, since every hop costs
CPU on the same two cores; the JSON's per-process CPU split says where it goes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from core.env import configure
from core.paths import StatePaths
from core.records import Candidate
from deployments.config import AppArgs
from deployments.ranker import RANK_BATCH_MAX, RANK_BATCH_WAIT_S
from deployments.retriever import BATCH_MAX, BATCH_WAIT_S
from engine.batching import MicroBatcher
from engine.feedback_client import LocalFeedback
from engine.search_service import SearchService, ServiceTimings
from ingest.registry import load_dataset
from ltrr.bench import load
from ranking.fusion import union
from ranking.model import load_latest, rank_many
from ranking.train import RankerTrainConfig, train_from_qrels
from retrievers import Query
from retrievers.index import IndexHandle, build_index
from rl.serving import build_policy

# Each variant names every flag it depends on: `ltrr up` turns the throughput mode on unless the
# environment says otherwise (deployments.cluster.SERVE_ENV), so "default" must switch it off.
VARIANTS: dict[str, dict[str, str]] = {
    "default": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"},
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "throughput-no-grpc": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_USE_GRPC_BY_DEFAULT": "0"},
    "grpc": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0", "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1"},
    "haproxy": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"},
}


SERVE_CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"


def app_args(index: Path, state: Path) -> AppArgs:
    raw = yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["args"]
    return AppArgs.model_validate({**raw, "index_dir": str(index), "state_dir": str(state)})


def in_process(index_dir: Path, state: Path, feedback_dir: Path) -> SearchService:
    """The service as the orchestrator builds it, with every remote call made a local one."""
    args = app_args(index_dir, state)
    index = IndexHandle.open(index_dir)
    retrievers = {s: index.load(s) for s in args.strategies}
    catalog = index.catalog()
    model = load_latest(StatePaths(state).ranker_models)

    def fn(r):
        if r.batched:
            batcher = MicroBatcher(lambda calls: r.retrieve_many([q for q, _ in calls], [k for _, k in calls]),
                                   max_size=BATCH_MAX, wait_s=BATCH_WAIT_S)  # as deployed

            async def batched(query: Query, k: int) -> list[Candidate]:
                return await batcher((query, k))
            return batched

        async def call(query: Query, k: int) -> list[Candidate]:
            return r.retrieve(query, k)
        return call

    ranker = MicroBatcher(lambda reqs: rank_many(model, reqs, catalog), max_size=RANK_BATCH_MAX,
                          wait_s=RANK_BATCH_WAIT_S)  # as deployed

    async def rank(query: str, cands: list[Candidate]):
        return model.version, await ranker((query, cands))

    policy = build_policy(args.policy, list(retrievers), "fixed", StatePaths(state).bandit_models)
    timings = ServiceTimings(args.strategy_timeout_ms / 1000, args.ranker_timeout_ms / 1000, args.circuit_cooldown_s,
                             args.load_shedding.retry_after_s, args.history_refresh_s)
    return SearchService({n: fn(r) for n, r in retrievers.items()}, rank, LocalFeedback(feedback_dir,
                         args.feedback_shards), policy, index, timings,
                         parse_for=frozenset(n for n, r in retrievers.items() if r.uses_parse))


def batching(index_dir: Path, state: Path, queries: list[str], sizes=(1, 2, 4, 8, 16)) -> dict:
    """CPU per request of the two batched calls at several batch sizes, in this process: dense
    query encoding (one torch thread, as a replica) and the ranker (featurize + predict over
    the fixed plan's union). What `BATCH_WAIT_S` and `RANK_BATCH_WAIT_S` are sized by."""
    index = IndexHandle.open(index_dir)
    args = app_args(index_dir, state)
    dense = index.load("dense")
    rs = {s: index.load(s) for s in args.strategies if s != "dense"}
    budgets = args.policy.budgets
    qs = [Query(q) for q in queries[:64]]
    model, catalog = load_latest(StatePaths(state).ranker_models), index.catalog()
    reqs = [(q.text, union({s: r.retrieve(q, budgets.get(s, 10) or 10) for s, r in rs.items()})) for q in qs]

    def per_request(fn, items, size) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for i in range(0, len(items), size):
                fn(items[i:i + size])
            best = min(best, (time.process_time() - t0) * 1000 / len(items))
        return round(best, 3)

    dense.retrieve_many(qs[:8], [50] * 8)  # warm
    return {"dense_ms": {n: per_request(lambda b: dense.retrieve_many(b, [50] * len(b)), qs, n) for n in sizes},
            "ranker_ms": {n: per_request(lambda b: rank_many(model, b, catalog), reqs, n) for n in sizes}}


def local_send(service: SearchService) -> load.Send:
    async def send(query: str) -> int:
        try:
            await service.search(query, 10)
            return 200
        except Exception:
            return 599
    return send


async def phases(send: load.Send, queries: list[str], a: argparse.Namespace, http: bool) -> dict:
    await load.sequential(send, queries[:20])  # warm up
    out = {"sequential": (await load.sequential(send, queries[: a.requests])).summary(),
           "closed": (await load.closed(send, queries[: a.requests], a.clients)).summary() | {"clients": a.clients}}
    curve = []
    for rate in a.rates:
        meter = load.CpuMeter()
        meter.start()
        phase = await load.open_loop(send, queries, rate, a.duration)
        row = phase.summary() | meter.stop(phase.statuses.get(200, 0))
        curve.append(row)
        print(f"  {rate:>6.1f}/s: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, errors {row['errors']}, "
              f"cpu/request {row['total_cpu_ms_per_request']} ms", flush=True)
        if row["p99_ms"] > a.stop_p99_ms or row["errors"] > phase.statuses.total() / 2:
            break  # far past the knee: higher rates only queue longer
    out["curve"], out["knee_rps"] = curve, load.knee(curve)
    return out


def http_send(session: aiohttp.ClientSession, base: str) -> load.Send:
    async def send(query: str) -> int:
        try:
            async with session.post(f"{base}/search", json={"query": query, "k": 10}) as r:
                await r.read()
                return r.status
        except Exception:
            return 599
    return send


async def run_http(base: str, queries: list[str], a: argparse.Namespace) -> dict:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=1000)) as session:
        return await phases(http_send(session, base), queries, a, http=True)


def ltrr(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "ltrr.cli", *args], check=True, env={**configure(), **(env or {})})


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, res in results.items():
        rates = [r["offered_rps"] for r in res["curve"]]
        line, = ax.plot(rates, [r["p99_ms"] for r in res["curve"]], "o-", label=f"{name} p99")
        ax.plot(rates, [r["p50_ms"] for r in res["curve"]], "s--", color=line.get_color(), alpha=0.6,
                label=f"{name} p50")
    ax.axhline(load.KNEE_P99_MS, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="offered load (requests/s, open loop)", ylabel="latency (ms, log)", yscale="log",
           title="ltrr /search on 2 cores: latency against offered load")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    configure()
    os.environ.setdefault("LTRR_TORCH_THREADS", "1")  # as every replica runs (ltrr up), so only Serve differs
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="builtin:music-demo")
    ap.add_argument("--index", default="indexes/music-demo")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--requests", type=int, default=300, help="sequential and closed-loop requests")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rates", default="5,10,20,30,40,60,80", help="open-loop rates (requests/s)")
    ap.add_argument("--duration", type=float, default=15, help="seconds per open-loop rate")
    ap.add_argument("--stop-p99-ms", type=float, default=3000, help="stop raising the rate past this p99")
    ap.add_argument("--variants", default="default,throughput", help=f"Serve variants: {', '.join(VARIANTS)}")
    ap.add_argument("--targets", default="in-process,serve")
    ap.add_argument("--no-ranker", action="store_true", help="serve the fallback (RRF) ranker, train none")
    ap.add_argument("--serve-code", help="serve another checkout of ltrr (its directory; e.g. an older commit in a "
                    "git worktree, to measure a baseline with this same script): `ltrr up` and every replica "
                    "import ltrr from there (PYTHONPATH)")
    ap.add_argument("--out", default="benchmarks/serve_latency.json")
    a = ap.parse_args()
    a.rates = [float(r) for r in a.rates.split(",")]
    ds = load_dataset(a.dataset)
    index_dir = Path(a.index).resolve()
    build_index(ds, index_dir)
    queries = list(ds.split("test").queries.values())
    work = Path(tempfile.mkdtemp(prefix="ltrr-serve-latency-"))
    state = work / "state"
    if not a.no_ranker:
        train_from_qrels(IndexHandle.open(index_dir), ds, "train", RankerTrainConfig(progress=False),
                         models_root=StatePaths(state).ranker_models)
    results: dict[str, dict] = {}
    targets = a.targets.split(",")
    batch = batching(index_dir, state, queries) if "in-process" in targets else None
    if batch:
        print("batching, CPU ms per request by batch size:", json.dumps(batch), flush=True)
    if "in-process" in targets:
        print("in-process", flush=True)

        async def local() -> dict:
            service = in_process(index_dir, state, work / "feedback-local")
            try:
                return await phases(local_send(service), queries, a, http=False)
            finally:
                await service.close()
        results["in-process"] = asyncio.run(local())
    for variant in a.variants.split(",") if "serve" in targets else []:
        env = VARIANTS[variant]
        print(f"serve ({variant}: {env or 'Ray defaults'})", flush=True)
        code = {"PYTHONPATH": str(Path(a.serve_code).resolve())} if a.serve_code else {}
        ltrr("up", "--dataset", a.dataset, "--index", str(index_dir), "--state", str(state), "--port", str(a.port),
             env={**env, **code})
        try:
            results[f"serve {variant}"] = asyncio.run(run_http(f"http://127.0.0.1:{a.port}", queries, a))
            results[f"serve {variant}"]["env"] = env
            if a.serve_code:
                results[f"serve {variant}"]["code"] = subprocess.run(
                    ["git", "-C", a.serve_code, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        finally:
            ltrr("down")
    base = results.get("in-process")
    summary = {name: {"sequential_p50_ms": r["sequential"]["p50_ms"], "closed_rps": r["closed"]["throughput_rps"],
                      "knee_rps": r["knee_rps"],
                      **({"p50_over_in_process": round(r["sequential"]["p50_ms"] / base["sequential"]["p50_ms"], 2),
                          "throughput_share": round(r["closed"]["throughput_rps"] / base["closed"]["throughput_rps"], 2)}
                         if base and name != "in-process" else {})}
               for name, r in results.items()}
    out = {"dataset": a.dataset, "ranker": "qrels" if not a.no_ranker else "fallback", "queries": len(queries),
           "clients": a.clients, "duration_s": a.duration, "when": time.strftime("%Y-%m-%d %H:%M"),
           "summary": summary, "batching": batch, "results": results}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    plot(results, Path(a.out).with_suffix(".png"))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
