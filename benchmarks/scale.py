"""Scale: build time, index size, memory and latency of every strategy at 10k, 100k and 1M items.

What it does, per catalogue size n (`builtin:music-demo?n_tracks=n`), in stages that each
add to `benchmarks/scale.json` (so a long run can be resumed stage by stage):

  build  builds every strategy (the six defaults and dense-static) into ROOT/md-<n>/ in this
         process; dense encodes with Ray Data `map_batches` from 100k items on (a local Ray
         instance, stopped afterwards). Records per strategy: build seconds, this process's
         resident memory before and at its peak during the build, and the index's size on
         disk (dense: `vectors.npy` apart). Writes the test queries to ROOT/md-<n>/queries.json.
  ann    for dense and dense-static, on their vectors: exact search (flat) as ground truth for
         300 test queries, then IVF and HNSW candidates: recall@100 against exact, build time,
         index memory, and search latency per query (one thread).
  cpu    each strategy's time per call in one process (no Serve, no HTTP) over 200 test queries,
         and the orchestrator's own per-request work (context features, entity cards).
  serve  serves the index (`ltrr up`'s functions, 2 CPUs, the fixed plan: the default budgets
         plus dense-static at 100, no epsilon, no shadow requests), sends the test queries one
         at a time over HTTP, and records /search p50 and p99, each strategy's call latency
         inside /search (`timings_ms`), and the memory of every Serve replica and feedback
         actor: RSS, PSS and USS from /proc/<pid>/smaps_rollup. n=3000 is the baseline.
  plot   one PNG (benchmarks/scale.png) of each figure against catalogue size.
  plan   the capacity plan for 100M items (README, "Capacity plan"), derived from the serve
         stage's curves: see `plan()` for how.

How to run (each stage that starts Ray or measures takes the machine's heavy-work lock):
  flock /tmp/ltrr-heavy.lock .venv/bin/python benchmarks/scale.py --stage build --sizes 10000,100000
  flock /tmp/ltrr-heavy.lock .venv/bin/python benchmarks/scale.py --stage ann --sizes 1000000
  flock /tmp/ltrr-heavy.lock .venv/bin/python benchmarks/scale.py --stage cpu --sizes 10000,100000,1000000
  flock /tmp/ltrr-heavy.lock .venv/bin/python benchmarks/scale.py --stage serve --sizes 3000,10000,100000,1000000
  (--strategies lexical,dense,memory,popularity,structured,explore --label=-default serves ltrr's
  default fixed plan, without the opt-in dense-static; --strategies lexical,memory,popularity,structured,
  explore,dense-static --label=-nodense the plan without MiniLM dense, measured from 3k to 1M)
  .venv/bin/python benchmarks/scale.py --stage plan
  .venv/bin/python benchmarks/scale.py --stage plot
Expect on 2 cores: the 1M build takes over an hour, nearly all of it MiniLM encoding
(about 230 short texts/s when quiet; 105 minutes measured with other work beside it);
everything else takes minutes. Results: README, "Scale".
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from core.env import configure

OUT = Path(__file__).with_name("scale.json")
PNG = Path(__file__).with_name("scale.png")
ALL = ["lexical", "dense", "memory", "popularity", "structured", "explore", "dense-static"]
PORT = 8131


def load() -> dict:
    return json.loads(OUT.read_text()) if OUT.is_file() else {}


def save(results: dict) -> None:
    OUT.write_text(json.dumps(results, indent=1, sort_keys=True))


def spec(n: int) -> str:
    return "builtin:music-demo" if n == 3000 else f"builtin:music-demo?n_tracks={n}"


def du_mb(path: Path, skip: tuple[str, ...] = ()) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name not in skip) / 2**20, 1)


# -- build ------------------------------------------------------------------------------
def build(n: int, root: Path, strategies: list[str], results: dict, encode: str = "auto") -> None:
    from ingest.registry import load_dataset
    from retrievers.index import build_index

    index_dir = root / f"md-{n}"
    t0 = time.perf_counter()
    dataset = load_dataset(spec(n))
    gen_s = round(time.perf_counter() - t0, 1)
    test = dataset.split("test")
    bulk = None
    if encode == "ray" or (encode == "auto" and n >= 100_000):
        from deployments.bulk_encode import ray_bulk_encode

        bulk = ray_bulk_encode
    try:
        manifest = build_index(dataset, index_dir, strategies, bulk_encode=bulk)
    finally:
        if bulk is not None:
            import ray

            ray.shutdown()
    (index_dir / "queries.json").write_text(json.dumps({"queries": test.queries, "intents": test.intents}))
    row = results.setdefault("build", {}).setdefault(str(n), {})
    row["_generate_s"] = gen_s
    for name, info in manifest["strategies"].items():
        row[name] = {**info, "disk_mb": du_mb(index_dir / name, ("vectors.npy",))}
        if (index_dir / name / "vectors.npy").is_file():
            row[name]["vectors_mb"] = du_mb(index_dir / name) - row[name]["disk_mb"]
    save(results)
    print(json.dumps({n: row}, indent=1))


# -- ann --------------------------------------------------------------------------------
def ann(n: int, root: Path, results: dict, strategies: list[str] = ALL, codecs: tuple[str, ...] = ("Flat", "SQfp16")) -> None:
    import faiss

    from retrievers import ann as ann_lib
    from retrievers.index import IndexHandle

    faiss.omp_set_num_threads(1)
    index_dir = root / f"md-{n}"
    queries = list(json.loads((index_dir / "queries.json").read_text())["queries"].values())[:300]
    handle = IndexHandle.open(index_dir)
    out = results.setdefault("ann", {}).setdefault(str(n), {})
    for name in ("dense", "dense-static"):
        if name not in handle.strategies or name not in strategies:
            continue
        vecs = np.load(index_dir / name / "vectors.npy", mmap_mode="r")
        q = handle.load(name).encode_queries(queries)
        exact = faiss.IndexFlatIP(vecs.shape[1])
        for lo in range(0, len(vecs), 100_000):
            exact.add(np.ascontiguousarray(vecs[lo:lo + 100_000]))
        t = time.perf_counter()
        truth_scores, truth = exact.search(q, 100)
        flat_ms = (time.perf_counter() - t) * 1000 / len(q)
        ties_at_100 = (truth_scores >= truth_scores[:, 99:100] - 1e-5).sum(1)
        rows = {"flat": {"recall@100": 1.0, "recall@100_ties": 1.0, "build_s": 0.0,
                         "memory_mb": round(vecs.nbytes / 2**20),
                         "exact_scores_tied_with_100th_median": int(np.median(ties_at_100)),
                         "ms_per_query": round(flat_ms, 3)}}
        del exact
        candidates = [("ivf", {"ivf_codec": "Flat"}, [32, 64, 128, 256, 512, 1024]),
                      ("ivf", {"ivf_codec": "SQfp16"}, [256]),
                      ("hnsw", {"hnsw_m": 32, "hnsw_ef_construction": 40}, [64, 128, 256])]
        candidates = [c for c in candidates if c[1].get("ivf_codec", "Flat") in codecs]
        if n > 300_000:  # HNSW insertion at a million costs many minutes on 2 cores: compared at 100k
            candidates = candidates[:-1]
        for kind, params, knobs in candidates:
            config = ann_lib.AnnConfig(index=kind, **params)
            faiss.omp_set_num_threads(2)  # build on both cores; search timings on one
            index, info = ann_lib.build(np.asarray(vecs), config)
            faiss.omp_set_num_threads(1)
            memory = round(faiss.serialize_index(index).nbytes / 2**20)
            for knob in knobs:
                ann_lib.configure(index, config.model_copy(update={"ivf_nprobe": knob, "hnsw_ef_search": knob}))
                t = time.perf_counter()
                lat = []
                found = np.empty((len(q), 100), dtype=np.int64)
                for i in range(len(q)):
                    s = time.perf_counter()
                    _, found[i] = index.search(q[i:i + 1], 100)
                    lat.append((time.perf_counter() - s) * 1000)
                recall = float(np.mean([len(set(found[i]) & set(truth[i])) / 100 for i in range(len(q))]))
                # ties: music-demo's templated texts give many items the same vector, so the exact top 100
                # is one arbitrary pick among equals; an item scoring at least the 100th exact score
                # (less float error) is as correct as the one it replaced (ann-benchmarks' distance recall)
                exact_of_found = np.einsum("qd,qkd->qk", q, np.asarray(vecs[np.maximum(found, 0).ravel()]).reshape(
                    len(q), 100, -1))
                ties = float(np.mean(((exact_of_found >= truth_scores[:, 99:100] - 1e-5) & (found >= 0)).sum(1) / 100))
                label = f"{kind}-{params.get('ivf_codec', '')}{info.get('nlist', '')}-m{params.get('hnsw_m', '')}" \
                        f"-{'nprobe' if kind == 'ivf' else 'ef'}{knob}".replace("--", "-")
                rows[label] = {"recall@100": round(recall, 4), "recall@100_ties": round(ties, 4),
                               "build_s": info["build_s"], "memory_mb": memory,
                               "ms_per_query": round(statistics.median(lat), 3),
                               "p99_ms": round(float(np.percentile(lat, 99)), 3)}
                print(name, n, label, rows[label], flush=True)
            del index
        out[name] = rows
        save(results)


# -- cpu --------------------------------------------------------------------------------
BUDGETS = {"lexical": 100, "dense": 100, "memory": 25, "popularity": 25, "structured": 50, "explore": 10,
           "dense-static": 100}


def cpu(n: int, root: Path, results: dict) -> None:
    """Each strategy's time per call in this process, one query at a time (its CPU cost: no HTTP,
    no Serve, nothing else waited on), at the fixed plan's budget, over 200 test queries."""
    from retrievers.index import IndexHandle

    index_dir = root / f"md-{n}"
    queries = list(json.loads((index_dir / "queries.json").read_text())["queries"].values())[:200]
    handle = IndexHandle.open(index_dir)
    out = results.setdefault("cpu", {}).setdefault(str(n), {})
    for name in handle.strategies:
        r = handle.load(name)
        for q in queries[:10]:
            r.retrieve(q, BUDGETS[name])
        lat = []
        for q in queries:
            t = time.perf_counter()
            r.retrieve(q, BUDGETS[name])
            lat.append((time.perf_counter() - t) * 1000)
        out[name] = {"p50_ms": round(float(np.percentile(lat, 50)), 3), "mean_ms": round(float(np.mean(lat)), 3)}
        print(n, name, out[name], flush=True)
        r.close()
        del r
    from engine.entities import EntityIndex  # the orchestrator's own work per request
    from rl.features import ContextFeaturizer

    catalog = handle.catalog_view()
    entities = EntityIndex(handle.entities(catalog))
    featurizer = ContextFeaturizer.from_catalog(catalog.values(), handle.schema)
    for name, fn in (("orchestrator:entities", lambda q: entities.cards(q, 3)),
                     ("orchestrator:features", featurizer.featurize)):
        lat = []
        for q in queries:
            t = time.perf_counter()
            fn(q)
            lat.append((time.perf_counter() - t) * 1000)
        out[name] = {"p50_ms": round(float(np.percentile(lat, 50)), 3), "mean_ms": round(float(np.mean(lat)), 3)}
        print(n, name, out[name], flush=True)
    out["_loadavg_1m"] = round(os.getloadavg()[0], 2)
    save(results)


# -- serve ------------------------------------------------------------------------------
def smaps(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) of a process, in MiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    kib = {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
           "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}
    return {k: round(v / 1024, 1) for k, v in kib.items()}


def replica_memory() -> dict[str, dict[str, float]]:
    from ray.util.state import list_actors

    from core.paths import DASHBOARD_URL

    out: dict[str, dict[str, float]] = {}
    for a in list_actors(address=DASHBOARD_URL, filters=[("state", "=", "ALIVE")], limit=1000):
        name = a.class_name
        if name.startswith("ServeReplica:"):
            name = name.split(":")[-1]
        elif "Feedback" in name:
            name = a.name or name
        else:
            continue
        try:
            out[name] = smaps(int(a.pid))
        except (OSError, TypeError, ValueError):
            continue
    return out


def serve(n: int, root: Path, requests: int, results: dict, strategies: list[str] = ALL, label: str = "") -> None:
    from core.paths import SERVE_CONFIG_TEMPLATE, StatePaths
    from deployments import cluster

    index_dir = root / f"md-{n}"
    queries = list(json.loads((index_dir / "queries.json").read_text())["queries"].values())
    state = root / f"state-{n}"
    shutil.rmtree(state, ignore_errors=True)
    base = f"http://127.0.0.1:{PORT}"
    from rl.policy import DEFAULT_BUDGETS

    budgets = {s: b for s, b in {**DEFAULT_BUDGETS, "dense-static": 100}.items() if s in strategies}
    if not cluster.start_ray(2):  # never deploy onto (or stop) a cluster somebody else runs
        raise SystemExit("a Ray cluster already runs on this machine; stop it first (one at a time)")
    try:
        t0 = time.perf_counter()
        rendered = StatePaths(state).serve_config
        config = cluster.render_config(SERVE_CONFIG_TEMPLATE, rendered, index_dir, state, PORT, {
            "strategies": strategies, "policy": {"kind": "fixed", "budgets": budgets, "epsilon": 0.0, "shadow_share": 0.0},
            "strategy_timeout_ms": 5000, "ranker_timeout_ms": 5000})
        app = config["applications"][0]
        if "dense-static" in strategies:
            app["deployments"].append({"name": "retriever-dense-static", "num_replicas": 1,
                                       "ray_actor_options": {"num_cpus": 0.1}})
        app["deployments"] = [d for d in app["deployments"] if not d["name"].startswith("retriever-")
                              or d["name"][len("retriever-"):] in strategies]
        for dep in app["deployments"]:  # one replica each: memory per replica, no autoscaling noise
            if "autoscaling_config" in dep:
                dep.pop("autoscaling_config")
                dep["num_replicas"] = 1
        import yaml

        rendered.write_text(yaml.safe_dump(config, sort_keys=False))
        cluster.deploy(rendered)
        cluster.wait_healthy(base, 3600)
        startup_s = round(time.perf_counter() - t0, 1)
        load_before = os.getloadavg()[0]  # other work on the machine shows here (2 cores)
        lat: list[float] = []
        per: dict[str, list[float]] = {}
        with httpx.Client(base_url=base, timeout=60) as client:
            for q in queries[:20]:  # warm-up
                client.post("/search", json={"query": q, "k": 10})
            for i in range(requests):
                t = time.perf_counter()
                r = client.post("/search", json={"query": queries[i % len(queries)], "k": 10})
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                for key, ms in r.json()["timings_ms"].items():
                    if key.startswith("retrieve:"):
                        per.setdefault(key.split(":", 1)[1], []).append(ms)
        memory = replica_memory()
        total = {k: round(sum(m[k] for m in memory.values()), 1) for k in ("rss", "pss", "uss")}
        row = {"p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
               "requests": requests, "startup_s": startup_s, "strategies": strategies,
               "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "strategy_ms": {s: {"p50": round(float(np.percentile(v, 50)), 2),
                                   "p99": round(float(np.percentile(v, 99)), 2)} for s, v in per.items()},
               "memory_mb": memory, "memory_total_mb": total}
        results.setdefault("serve", {})[f"{n}{label}"] = row
        save(results)
        print(json.dumps({n: row}, indent=1))
    finally:
        cluster.down()


def serve_rows(results: dict, label: str = "") -> dict[int, dict]:
    """The serve stage's rows of one plan variant (`--label`), by catalogue size."""
    out = {}
    for key, row in results.get("serve", {}).items():
        n, _, rest = key.partition("-")
        if n.isdigit() and (f"-{rest}" if rest else "") == label:
            out[int(n)] = row
    return out


# -- plan -------------------------------------------------------------------------------
TARGET_ITEMS = 100_000_000
NODE_MEMORY_GIB = 64        # a common cloud node (16 vCPU, 64 GiB); the plan keeps 25 % headroom
NODE_CORES = 16
REPLICA_GIB = 12            # a shard replica at most this big: several fit on a node, restarts stay quick
TARGET_RPS = 100            # /search requests per second to plan replicas for (replicas scale linearly)
CALL_MS_MAX = 50            # a shard is split until one call costs at most this much CPU


def fit_linear(ns: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares y = a + b n over the measured sizes (memory and disk grow linearly)."""
    b, a = np.polyfit(np.array(ns, float), np.array(ys, float), 1)
    return float(a), float(b)


def fit_power(ns: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares log y = log c + e log n (latency: e near 1 for a scan, near 0 for a look-up)."""
    e, logc = np.polyfit(np.log(np.array(ns, float)), np.log(np.maximum(np.array(ys, float), 1e-3)), 1)
    return float(np.exp(logc)), float(e)


def ann_default_ms(results: dict, strategy: str) -> float | None:
    """Time per query of the default IVF setting (a quarter of the cells) at 1M, from the ann stage."""
    rows = results.get("ann", {}).get("1000000", {}).get(strategy, {})
    return next((v["ms_per_query"] for k, v in rows.items() if k.startswith("ivf-Flat4096") and k.endswith("1024")),
                None)


def dense_plan(results: dict, ds: dict | None, strat: dict) -> dict | None:
    """MiniLM dense's row of the plan. Measured where the 1M index was served (`serve` row
    "1000000" with retriever-dense, and the ann stage's IVF time at 1M): memory per item from
    the replica's PSS at 3k and 1M, a call's CPU from the IVF time (linear in the vectors
    scanned) plus the query encoding (dense minus dense-static p50 at 3k). Otherwise derived
    from dense-static: x 1.5 memory per item and scan time (384 against 256 dimensions) plus
    the MiniLM model (replica PSS at 3k, dense minus dense-static)."""
    full, big = serve_rows(results).get(3000), serve_rows(results).get(1_000_000)
    if not (ds and full and "dense" in full["strategy_ms"] and "dense-static" in full["strategy_ms"]):
        return None
    encode_ms = max(0.0, full["strategy_ms"]["dense"]["p50"] - full["strategy_ms"]["dense-static"]["p50"])
    ivf_ms = ann_default_ms(results, "dense")
    if big and "retriever-dense" in big["memory_mb"] and ivf_ms is not None:
        fixed = full["memory_mb"]["retriever-dense"]["pss"]
        per_item = (big["memory_mb"]["retriever-dense"]["pss"] - fixed) / (1_000_000 - 3000)
        c, e = ivf_ms / 1e6, 1.0
        source = "measured: replica PSS at 3k and 1M, IVF time at 1M (ann stage), query encoding at 3k"
    else:
        fixed = ds["memory_mb"]["fixed"] + full["memory_mb"]["retriever-dense"]["pss"] \
            - full["memory_mb"]["retriever-dense-static"]["pss"]
        per_item = ds["memory_mb"]["per_million_items"] * 1.5 / 1e6
        c, e = 1.5 * ds["cpu_ms"]["c"], ds["cpu_ms"]["exponent"]
        source = "dense-static x 1.5 (384 vs 256 dimensions) + MiniLM model and query encoding at 3k"
    shards = 1
    while fixed + per_item * TARGET_ITEMS / shards > REPLICA_GIB * 1024 or c * (TARGET_ITEMS / shards) ** e > CALL_MS_MAX:
        shards *= 2
    cpu_ms = c * (TARGET_ITEMS / shards) ** e + encode_ms
    replicas = max(1, int(np.ceil(TARGET_RPS * cpu_ms / 1000 / 0.7)))
    gib = (fixed + per_item * TARGET_ITEMS / shards) / 1024
    return {"derived_from": source, "memory_mb": {"fixed": round(fixed), "per_million_items": round(per_item * 1e6)},
            "shards": shards, "items_per_shard": int(TARGET_ITEMS / shards), "cpu_ms_per_call": round(cpu_ms, 2),
            "replicas_per_shard": replicas, "cores": shards * replicas, "replica_gib": round(gib, 2),
            "memory_gib": round(shards * replicas * gib, 1),
            "shard_p50_ms": round(cpu_ms + strat.get("popularity", {}).get("p50", 0.0), 1)}


def plan(results: dict, label: str = "-nodense") -> dict:
    """Shards, memory per node, replicas and expected p50 for TARGET_ITEMS, from the measured curves.

    Memory: each strategy's replica PSS through Serve (the `label` variant, served at 10k, 100k
    and 1M) fitted linearly in the items it holds. A strategy is split into the fewest shards
    (a power of two) whose replica needs at most REPLICA_GIB, so that a node holds several, and
    whose call costs at most CALL_MS_MAX (more shards: shorter calls, more total CPU when a strategy's
    cost grows slower than linearly).
    CPU: each strategy's time per call in one process (`--stage cpu`, 10k..1M) fitted as a power
    law in the items, read at the shard's size; a shard needs TARGET_RPS x that / 1000 cores at
    70 % utilisation, one core per replica. Latency: a shard call through Serve is its CPU time
    plus the Serve call overhead measured at 1M (a strategy's p50 inside /search minus its
    in-process p50, median over strategies); /search p50 is the orchestrator's measured own time
    at 1M (/search p50 minus its slowest strategy) plus the slowest shard. Node count: the larger
    of memory / (75 % of NODE_MEMORY_GIB) and cores / NODE_CORES."""
    rows = serve_rows(results, label)
    sv = {str(n): r for n, r in rows.items()}
    sizes = sorted(n for n in rows if n >= 10_000)
    cpu_rows = results.get("cpu", {})
    out: dict = {"target_items": TARGET_ITEMS, "node": {"memory_gib": NODE_MEMORY_GIB, "cores": NODE_CORES},
                 "replica_gib_max": REPLICA_GIB, "target_rps": TARGET_RPS, "fitted_on": sizes,
                 "variant": label or "full", "strategies": {}}
    if len(sizes) < 2:
        return out
    top = str(max(sizes))
    strat = sv[top]["strategy_ms"]
    overheads = [strat[s]["p50"] - cpu_rows[top][s]["p50_ms"] for s in strat if s in cpu_rows.get(top, {})]
    serve_overhead = float(np.median(overheads)) if overheads else 0.0
    own = sv[top]["p50_ms"] - max(v["p50"] for v in strat.values())
    slowest = 0.0
    for s in [*ALL, "orchestrator:entities", "orchestrator:features"]:
        dep = f"retriever-{s}"
        mem_ns = [n for n in sizes if dep in sv[str(n)]["memory_mb"]]
        cpu_ns = [n for n in sizes if s in cpu_rows.get(str(n), {})]
        ivf = ann_default_ms(results, s)
        if ivf is not None:  # above 200k items a shard is an IVF index scanning a quarter of its cells:
            c, e = ivf / 1e6, 1.0  # the measured time per query at 1M, linear in the vectors scanned
            source = "IVF at nprobe = nlist/4: the ann stage's time per query at 1M, linear in items"
        elif len(cpu_ns) >= 2:
            c, e = fit_power(cpu_ns, [cpu_rows[str(n)][s]["mean_ms"] for n in cpu_ns])
            source = "in-process time per call (--stage cpu)"
        else:  # no in-process figures: a call's p50 inside /search less popularity's (whose own work is
            # a list slice, so its p50 is the Serve call and queueing overhead at that size and load)
            lat_ns = [n for n in sizes if s in sv[str(n)]["strategy_ms"] and "popularity" in sv[str(n)]["strategy_ms"]]
            if len(lat_ns) < 2:
                continue
            c, e = fit_power(lat_ns, [max(0.5, sv[str(n)]["strategy_ms"][s]["p50"]
                                          - sv[str(n)]["strategy_ms"]["popularity"]["p50"]) for n in lat_ns])
            source = "p50 inside /search minus popularity's p50 (the call overhead), floor 0.5 ms"
        row: dict = {"cpu_ms": {"c": round(c, 6), "exponent": round(e, 3), "from": source}}
        shards, a, b = 1, 0.0, 0.0
        while (not s.startswith("orchestrator") and c * (TARGET_ITEMS / shards) ** e > CALL_MS_MAX
               and shards < 4096):  # latency: split until a call is short (the orchestrator's work is per request)
            shards *= 2
        if len(mem_ns) >= 2:
            a, b = fit_linear(mem_ns, [sv[str(n)]["memory_mb"][dep]["pss"] for n in mem_ns])
            big = max(mem_ns)  # at least its index files per item at the largest size (page-cached; lexical's
            if s in results["build"].get(str(big), {}):  # Lucene files are mmap'd, so its PSS misses them)
                b = max(b, results["build"][str(big)][s]["disk_mb"] / big)
            while a + b * TARGET_ITEMS / shards > REPLICA_GIB * 1024 and shards < 4096:
                shards *= 2
            row["memory_mb"] = {"fixed": round(a), "per_million_items": round(b * 1e6)}
        per_shard = TARGET_ITEMS / shards
        cpu_ms = c * per_shard ** e
        replicas = max(1, int(np.ceil(TARGET_RPS * cpu_ms / 1000 / 0.7)))
        row.update(shards=shards, items_per_shard=int(per_shard), cpu_ms_per_call=round(cpu_ms, 2),
                   replicas_per_shard=replicas, cores=shards * replicas,
                   replica_gib=round((a + b * per_shard) / 1024, 2) if b else None,
                   memory_gib=round(shards * replicas * (a + b * per_shard) / 1024, 1) if b else None)
        if not s.startswith("orchestrator"):
            overhead = serve_overhead if len(cpu_ns) >= 2 else strat.get("popularity", {}).get("p50", 0.0)
            row["shard_p50_ms"] = round(cpu_ms + overhead, 1)
            slowest = max(slowest, row["shard_p50_ms"])
        out["strategies"][s] = row
    dense = dense_plan(results, out["strategies"].get("dense-static"), strat)
    if dense:
        out["strategies"]["dense"] = dense
        slowest = max(slowest, dense["shard_p50_ms"])
    for dep in ("orchestrator", "ranker"):  # one copy per replica, whatever the shards
        ns = [n for n in sizes if dep in sv[str(n)]["memory_mb"]]
        a, b = fit_linear(ns, [sv[str(n)]["memory_mb"][dep]["pss"] for n in ns])
        out[dep] = {"memory_mb": {"fixed": round(a), "per_million_items": round(b * 1e6)},
                    "replica_gib_at_target": round((a + b * TARGET_ITEMS) / 1024, 1)}
    out["orchestrator"]["replicas"] = max(1, int(np.ceil(TARGET_RPS * own / 1000 / 0.7)))  # own time: an upper bound
    cores = sum(v["cores"] for v in out["strategies"].values())
    memory = sum(v["memory_gib"] or 0 for v in out["strategies"].values())
    out.update(serve_call_overhead_ms=round(serve_overhead, 1), orchestrator_own_ms_at_largest=round(own, 1),
               search_p50_ms=round(own + slowest, 1), cores=cores, memory_gib=round(memory, 1),
               nodes=int(max(np.ceil(memory / (0.75 * NODE_MEMORY_GIB)), np.ceil(cores / NODE_CORES))))
    return out


# -- plot -------------------------------------------------------------------------------
def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    b = results.get("build", {})
    sizes = sorted(int(n) for n in b)
    for ax, key, title in ((axes[0][0], "seconds", "build time (s)"), (axes[0][1], "disk_mb", "index on disk (MiB)"),
                           (axes[0][2], "peak_rss_mb", "build peak RSS of the process (MiB)")):
        for s in ALL:
            xs = [n for n in sizes if s in b[str(n)]]
            if xs:
                ax.plot(xs, [b[str(n)][s][key] for n in xs], marker="o", label=s)
        ax.set(xscale="log", yscale="log", title=title, xlabel="items")
    axes[0][0].legend(fontsize=8)
    sv = {str(n): r for n, r in serve_rows(results).items()}
    ss = sorted(int(n) for n in sv)
    ax = axes[1][0]
    for key in ("p50_ms", "p99_ms"):
        ax.plot(ss, [sv[str(n)][key] for n in ss], marker="o", label=f"/search {key[:3]}")
    for label in sorted({k.partition("-")[2] for k in results.get("serve", {}) if "-" in k}):
        alt = serve_rows(results, f"-{label}")
        ax.plot(sorted(alt), [alt[n]["p50_ms"] for n in sorted(alt)], marker="s", ls=":",
                label=f"/search p50 ({label})")
    for s in ALL:
        xs = [n for n in ss if s in sv[str(n)]["strategy_ms"]]
        if xs:
            ax.plot(xs, [sv[str(n)]["strategy_ms"][s]["p50"] for n in xs], ls="--", marker=".", label=f"{s} p50")
    ax.set(xscale="log", yscale="log", title="latency through Serve (ms)", xlabel="items")
    ax.legend(fontsize=7)
    ax = axes[1][1]
    nd = serve_rows(results)  # the seven strategies, MiniLM dense included (3k, 10k and 1M)
    ns = sorted(nd)
    for d in sorted({d for n in ns for d in nd[n]["memory_mb"]}):
        xs = [n for n in ns if d in nd[n]["memory_mb"]]
        ax.plot(xs, [nd[n]["memory_mb"][d]["pss"] for n in xs], marker=".", label=d.replace("retriever-", ""))
    for key, color in (("pss", "k"), ("rss", "gray"), ("uss", "brown")):
        ax.plot(ns, [nd[n]["memory_total_mb"][key] for n in ns], marker="o", color=color, lw=2,
                label=f"all replicas {key.upper()}")
    ax.axhline(12 * 1024, color="r", ls=":", label="12 GiB")
    ax.set(xscale="log", yscale="log", title="memory per replica, PSS (MiB; seven strategies)", xlabel="items")
    ax.legend(fontsize=6)
    ax = axes[1][2]
    a = results.get("ann", {})
    curves: dict[str, list[tuple[int, float]]] = {}
    for n in sorted(a, key=int):
        for name, rows in a[n].items():
            for label, v in rows.items():
                if label == "flat":
                    continue
                kind, _, knob = label.rpartition("-")
                if kind.startswith("ivf"):
                    nlist = 4096 if "4096" in kind else 1024
                    key = f"{name} {kind.split('-')[1].rstrip('0123456789')} probes 1/{nlist // int(knob[6:])}"
                else:
                    key = f"{name} {kind} {knob}"
                curves.setdefault(key, []).append((int(n), v["recall@100"]))
    for key, pts in sorted(curves.items()):
        ax.plot(*zip(*pts, strict=True), marker="o", label=key)
    ax.axhline(0.95, color="r", ls=":")
    ax.set(xscale="log", title="approximate dense recall@100 vs exact", xlabel="items")
    ax.legend(fontsize=6)
    fig.suptitle("ltrr at scale: builtin:music-demo on 2 cores (benchmarks/scale.py)")
    fig.tight_layout()
    fig.savefig(PNG, dpi=90)
    print(f"wrote {PNG}")


def main() -> int:
    configure()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=["build", "ann", "cpu", "serve", "plot", "plan"], required=True)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--root", default="/work/scale", help="where the indexes and state live (never committed)")
    p.add_argument("--strategies", default=",".join(ALL))
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--encode", choices=["auto", "local", "ray"], default="auto",
                   help="dense encoding in the build: auto = Ray Data from 100k items on")
    p.add_argument("--codecs", default="Flat,SQfp16", help="ann stage: the IVF list codecs to compare")
    p.add_argument("--label", default="", help="suffix of the serve row's key (a variant of the plan)")
    args = p.parse_args()
    results = load()
    root = Path(args.root)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for n in sizes if args.stage in ("build", "ann", "cpu", "serve") else []:
        if args.stage == "build":
            build(n, root, args.strategies.split(","), results, args.encode)
        elif args.stage == "ann":
            ann(n, root, results, args.strategies.split(","), tuple(args.codecs.split(",")))
        elif args.stage == "cpu":
            cpu(n, root, results)
        else:
            serve(n, root, args.requests, results, args.strategies.split(","), args.label)
        results = load()
    if args.stage == "plot":
        plot(results)
    if args.stage == "plan":
        results["plan"] = plan(results)
        save(results)
        print(json.dumps(results["plan"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
