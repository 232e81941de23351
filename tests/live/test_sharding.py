"""Sharded strategies across two Ray nodes on one machine (`ray.cluster_utils.Cluster`, as in
test_multinode.py, whose module docstring explains the loopback settings).

A 300-track music-demo index with lexical and dense split into 2 shards each
(`ltrr index --shards lexical=2,dense=2 --encode-with ray`: the dense vectors come from Ray
Data `map_batches`, and must equal encoding in process). Node A (`zone_a`) runs the proxy, the
orchestrator, the ranker and shard 0 of both strategies; node B (`zone_b`) runs shard 1 of
both, pinned there through `ray_actor_options.resources`. The fixed plan asks each
strategy for 10 candidates and the answer shows all of them (k 20), so every strategy's
list can be read back from `strategy_ranks`. It checks:

- every served list equals the unsharded index's top 10, items and ranks (lexical through
  global BM25 statistics, dense through exact inner products);
- after node B is removed, answers are still 200, degraded, name `lexical/shard1` and
  `dense/shard1` in `failed_strategies`, and hold shard 0's items only, in the unsharded order.
"""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from core.paths import StatePaths
from tests.helpers.service import ltrr, two_zone_cluster

PORT = 8127
BASE = f"http://127.0.0.1:{PORT}"
SPEC = "builtin:music-demo?n_tracks=300&n_artists=25&n_train=50&n_test=40"
QUERIES = ["chill jazz", "taylor lovell", "relaxing music with sax for a drizzly evening", "golden river",
           "angry metal with power chords", "love songs"]
BUDGET = 10


@pytest.fixture(scope="module")
def sharded_index(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sharded") / "index"
    built = ltrr("index", "--dataset", SPEC, "--out", str(out), "--strategies", "lexical,dense",
                 "--shards", "lexical=2,dense=2", "--encode-with", "ray", "--json")
    assert built.returncode == 0, built.stderr[-3000:]
    return out


def _config(index: Path, state: Path) -> Path:
    from core.paths import SERVE_CONFIG_TEMPLATE as REPO_CONFIG
    from deployments.cluster import render_config

    out = StatePaths(state).serve_config
    config = render_config(REPO_CONFIG, out, index, state, PORT, {
        "strategies": ["lexical", "dense"], "shards": {"lexical": 2, "dense": 2}, "strategy_timeout_ms": 2000,
        "policy": {"kind": "fixed", "budgets": {"lexical": BUDGET, "dense": BUDGET}, "epsilon": 0.0,
                   "shadow_share": 0.0}})
    app = config["applications"][0]
    keep = {d["name"]: d for d in app["deployments"] if d["name"] in ("orchestrator", "ranker")}
    for name in keep.values():
        name["ray_actor_options"]["resources"] = {"zone_a": 1}
    for strategy in ("lexical", "dense"):
        for shard in (0, 1):
            keep[f"retriever-{strategy}-shard{shard}"] = {
                "name": f"retriever-{strategy}-shard{shard}", "num_replicas": 1,
                "ray_actor_options": {"num_cpus": 0.1, "resources": {"zone_a" if shard == 0 else "zone_b": 1}}}
    app["deployments"] = list(keep.values())
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def _lists(body: dict) -> dict[str, list[str]]:
    """Each strategy's served list, in its own rank order, read back from the answer."""
    out: dict[str, list[tuple[int, str]]] = {}
    for r in body["results"]:
        for s, rank in r["strategy_ranks"].items():
            out.setdefault(s, []).append((rank, r["item_id"]))
    return {s: [i for _, i in sorted(pairs)] for s, pairs in out.items()}


def _search(client: httpx.Client, q: str) -> dict:
    r = client.post("/search", json={"query": q, "k": 2 * BUDGET, "related": 0})
    assert r.status_code == 200, r.text
    return r.json()


def test_sharded_lexical_and_dense_equal_unsharded_and_survive_a_lost_node(tmp_path, sharded_index, monkeypatch):
    import ray

    from deployments.cluster import deploy, wait_healthy
    from deployments.feedback import NAMESPACE
    from retrievers.dense import VECTORS, item_text
    from retrievers.index import IndexHandle
    from retrievers.shards import shard_of

    index = IndexHandle.open(sharded_index)
    expected = {s: {q: [c.item_id for c in index.load(s).retrieve(q, BUDGET)] for q in QUERIES}
                for s in ("lexical", "dense")}
    dense = index.load("dense")  # its vectors came from Ray Data map_batches: the same as encoding here
    catalog = index.catalog()
    texts = [item_text(catalog[i], dense.meta["fields"]) for i in dense.ids[:40]]
    assert np.allclose(np.load(sharded_index / "dense" / VECTORS)[:40], dense.encoder.encode(texts), atol=1e-5)
    cluster, node_b = two_zone_cluster(monkeypatch, NAMESPACE)
    try:
        deploy(_config(sharded_index, tmp_path / "state"))
        wait_healthy(BASE, 300)
        with httpx.Client(base_url=BASE, timeout=60) as client:
            for q in QUERIES:
                body = _search(client, q)
                assert not body["failed_strategies"], body["failed_strategies"]
                got = _lists(body)
                for s in ("lexical", "dense"):
                    assert got.get(s, []) == expected[s][q], (s, q)

            cluster.remove_node(node_b, allow_graceful=False)
            deadline, degraded = time.monotonic() + 60, None
            while time.monotonic() < deadline and degraded is None:
                body = _search(client, QUERIES[0])
                if {"lexical/shard1", "dense/shard1"} <= set(body["failed_strategies"]):
                    degraded = body
            assert degraded is not None, "answers never named the lost shards"
            for q in QUERIES:
                body = _search(client, q)
                assert body["degraded"] and body["results"], q
                got = _lists(body)
                for s in ("lexical", "dense"):
                    assert all(shard_of(i, 2) == 0 for i in got.get(s, [])), (s, q)
                    order = {i: n for n, i in enumerate(c.item_id for c in index.load(s).retrieve(q, 300))}
                    assert got.get(s, []) == sorted(got.get(s, []), key=order.__getitem__), (s, q)
    finally:
        ray.shutdown()
        cluster.shutdown()
        ltrr("down")
