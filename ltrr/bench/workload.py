"""Bench workloads: a dataset, its traffic and held-out query splits, an index, a ranker,
and every query's full fan-out retrieved once.

Why retrieve once: every system the bench compares (ltrr, static plans, the oracle) asks
for a sub-plan of "every strategy at budget 100". A plan's candidates are exactly the
items some called strategy ranked at or above its budget (`rl.reward.union_under_plan`),
so one full fan-out per query, with its measured per-strategy latency, serves every
system identically. The memory strategy is the exception: like the service's memory
replicas, which pull click updates from the feedback actors, it learns from the users'
feedback as the stream goes, so its list is recomputed per request (`with_memory`) from
the stream's one memory retriever. Explore's random draw is fixed per query.

Workload names: `music-demo` (builtin:music-demo), `spotify` and `scifact` (under
LTRR_DATA, or `--data`), `beir:DIR` (any BEIR directory; without a train qrels file its
test queries are split by a hash of the query id into traffic and held-out halves), and
any `builtin:` spec (e.g. `builtin:music-demo?n_tracks=600`, used by the tests).
"""
from __future__ import annotations

import functools
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from core.errors import DatasetError
from core.model import Dataset, Item, QuerySet
from core.records import Candidate, Hit
from deployments.cluster import slug
from ingest.registry import load_dataset
from ranking.fusion import union
from ranking.model import RankerModel, latest_version, rank
from ranking.train import RankerTrainConfig, train_from_qrels
from retrievers import STRATEGIES, Query
from retrievers.index import IndexHandle, build_index
from rl.cost import CostModel
from rl.policy import LEVELS

TOP = max(LEVELS)
NAMED = ("music-demo", "spotify", "scifact")


@dataclass
class Fanout:
    """One query's full fan-out: candidates with provenance, and latency per strategy (ms)."""

    candidates: list[Candidate]
    latency_ms: dict[str, float]
    returned: dict[str, int]
    failed: tuple[str, ...] = ()


@dataclass
class Workload:
    name: str
    dataset: Dataset
    traffic: QuerySet
    heldout: QuerySet
    index: IndexHandle
    ranker: RankerModel
    fanout: dict[str, Fanout] = field(default_factory=dict)  # query text -> full fan-out

    @functools.cached_property
    def catalog(self) -> dict[str, Item]:
        """The catalogue, read once: timed code (the ranker's cost) must not pay for reading it."""
        return self.index.catalog()


def resolve(name: str, data_root: Path | None) -> tuple[str, str]:
    """(workload label, dataset spec) for a workload name."""
    if name == "music-demo":
        return name, "builtin:music-demo"
    if name.startswith("builtin:"):  # e.g. builtin:music-demo?n_tracks=600 (a smaller catalogue)
        return slug(name), name
    if name in ("spotify", "scifact"):
        root = data_root or (Path(os.environ["LTRR_DATA"]) if os.environ.get("LTRR_DATA") else None)
        if root is None:
            raise DatasetError(f"workload {name!r} needs the real data: pass --data DIR or set LTRR_DATA")
        sub = {"spotify": "spotify_songs", "scifact": "scifact"}[name]
        path = Path(root) / sub
        if not path.is_dir():
            raise DatasetError(f"workload {name!r}: {path} does not exist")
        return name, f"{'spotify' if name == 'spotify' else 'beir'}:{path}"
    if name.startswith("beir:"):
        path = Path(name[len("beir:"):])
        return path.name or "beir", f"beir:{path}"
    raise DatasetError(f"unknown workload {name!r}: use music-demo, spotify, scifact or beir:DIR")


def _half(qid: str) -> bool:
    return int(hashlib.md5(qid.encode()).hexdigest()[:8], 16) % 2 == 0


def split_traffic(ds: Dataset) -> tuple[QuerySet, QuerySet]:
    """(traffic, held-out): the train and test splits, or test split in two by query-id hash."""
    test = ds.split("test")
    if "train" in ds.splits and ds.splits["train"].judged():
        return ds.splits["train"], test
    parts = [QuerySet({q: t for q, t in test.queries.items() if _half(q) == side},
                      {q: r for q, r in test.qrels.items() if _half(q) == side},
                      {q: i for q, i in test.intents.items() if _half(q) == side}) for side in (True, False)]
    ds.splits["train"] = parts[0]
    return parts[0], parts[1]


def load_workload(name: str, state: Path, data_root: Path | None = None, progress: bool = True) -> Workload:
    """Load the dataset, build (or reuse) its index under `state/<label>/index`, and train
    (or reuse) the ranker on the traffic split's qrels over full fan-out candidates."""
    label, spec = resolve(name, data_root)
    ds = load_dataset(spec)
    traffic, heldout = split_traffic(ds)
    index_dir = state / label / "index"
    build_index(ds, index_dir)
    index = IndexHandle.open(index_dir)
    models = state / label / "ranker"
    version = latest_version(models) if models.exists() else None
    if version is not None:
        ranker = RankerModel.load(models / version)
    else:
        cfg = RankerTrainConfig(budgets={s: TOP for s in STRATEGIES}, progress=progress)
        ranker = RankerModel.load(train_from_qrels(index, ds, "train", cfg, models_root=models))
    return Workload(label, ds, traffic, heldout, index, ranker)


def fan_out(wl: Workload, texts: list[str], progress: bool = True) -> None:
    """Retrieve every strategy at the top budget for each new query text, timing each call."""
    todo = [t for t in dict.fromkeys(texts) if t not in wl.fanout]
    if not todo:
        return
    retrievers = {s: wl.index.load(s) for s in STRATEGIES}
    for r in retrievers.values():
        r.retrieve("warm up", 1)
    for text in tqdm(todo, desc=f"{wl.name}: full fan-out", unit="query", disable=not progress):
        results, latency, returned, failed = {}, {}, {}, []
        for s, r in retrievers.items():
            start = time.perf_counter()
            try:
                cands = r.retrieve(Query(text=text), TOP)
            except Exception:  # a strategy that cannot answer this query (e.g. no parse) is "failed"
                cands = []
                failed.append(s)
            latency[s] = (time.perf_counter() - start) * 1000
            results[s] = cands
            returned[s] = len(cands)
        wl.fanout[text] = Fanout(union(results), latency, returned, tuple(failed))


def measure_costs(wl: Workload, texts: list[str], call_overhead_ms: float, progress: bool = True) -> CostModel:
    """Time every strategy at every budget level on `texts` (dense includes encoding the
    query), and the ranker on unions of several sizes: the bench's `CostModel`, in ms of
    real compute on this machine, fitted as the service's own log would be."""
    retrievers = {s: wl.index.load(s) for s in STRATEGIES}
    samples: dict[str, list[tuple[int, float]]] = {s: [] for s in STRATEGIES}
    ranker: list[tuple[int, float]] = []
    for text in tqdm(texts, desc=f"{wl.name}: costs", unit="query", disable=not progress):
        for s, r in retrievers.items():
            try:
                r.retrieve(Query(text=text), 1)  # warm: per-query caches (e.g. parsing) are not the budget's cost
            except Exception:
                continue
            for b in LEVELS[1:]:
                start = time.perf_counter()
                try:
                    r.retrieve(Query(text=text), b)
                except Exception:
                    continue
                samples[s].append((b, (time.perf_counter() - start) * 1000))
        full = wl.fanout[text].candidates if text in wl.fanout else []
        for n in (10, 50, 150, 300, 600):
            if len(full) >= n:
                ranker.append((n, ranked(wl, text, full[:n])[1]))
    return CostModel.fit(samples, ranker, call_overhead_ms)


def ranked(wl: Workload, query: str, cands: list[Candidate]) -> tuple[list[str], float]:
    """The ranker's order of `cands` and the time it took (ms)."""
    start = time.perf_counter()
    order = [i for i, _ in rank(wl.ranker, query, cands, wl.catalog)]
    return order, (time.perf_counter() - start) * 1000


def with_memory(candidates: list[Candidate], memory: list[Candidate]) -> list[Candidate]:
    """A fan-out's candidates with the memory strategy's hits replaced by `memory` (its
    current list for the query): what the full fan-out retrieves now that memory has learned."""
    merged: dict[str, dict[str, Hit]] = {}
    for c in candidates:
        hits = {s: h for s, h in c.hits.items() if s != "memory"}
        if hits:
            merged[c.item_id] = hits
    for c in memory:
        merged.setdefault(c.item_id, {})["memory"] = Hit(int(c.rank), float(c.score))
    return [Candidate(i, h) for i, h in merged.items()]
