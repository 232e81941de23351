"""`ltrr bench` end to end on a small generated catalogue: the stream, two PPO retrainings
gated by OPE, the held-out evaluation, report.md with its plots, and the --json line.

The figures themselves are the benchmark's business (benchmarks/report.md); this test
checks what must hold whatever PPO learns: the oracle bounds every system's reward,
full fan-out's union contains every other system's, and the JSON has the promised form."""
from __future__ import annotations

import json
import subprocess
import sys

SYSTEMS = {"ltrr", "full_fanout", "rrf", "best_fixed", "oracle", "lexical", "dense", "memory", "popularity",
           "structured", "explore"}
KEYS = {"reward_last_quarter", "candidate_recall", "ndcg@10", "candidates_per_query", "p50_ms"}


def test_bench_runs_and_reports(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ltrr.cli", "bench", "--workload", "builtin:music-demo?n_tracks=400",
                           "--requests", "300", "--retrain-every", "100", "--shadow-share", "0.3",
                           "--ppo-iterations", "10", "--state", str(tmp_path / "state"), "--out", str(tmp_path / "out"),
                           "--json"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    (name, table), = result.items()
    assert name == "music-demo-n-tracks-400"
    assert set(table) == SYSTEMS and all(set(row) == KEYS for row in table.values())
    oracle = table["oracle"]["reward_last_quarter"]
    assert all(row["reward_last_quarter"] <= oracle + 1e-9 for row in table.values())
    full = table["full_fanout"]
    assert all(row["candidate_recall"] <= full["candidate_recall"] + 1e-9 for row in table.values())
    assert all(row["candidates_per_query"] <= full["candidates_per_query"] + 1e-9 for row in table.values())
    assert full["candidate_recall"] > table["explore"]["candidate_recall"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"## {name}" in report and "| ltrr |" in report
    meta = json.loads((tmp_path / "out" / "report" / f"{name}.json").read_text())["meta"]
    assert len(meta["retrains"]) >= 1
    assert {"ips", "snips", "dr", "shadow"} <= set(meta["retrains"][0]["ope"]["candidate"])
    for plot in meta["plots"]:
        assert (tmp_path / "out" / plot).stat().st_size > 10_000


def test_with_memory_replaces_only_the_memory_hits():
    """The bench's per-request fan-out: memory's current list replaces its seeded hits;
    the other strategies' hits stay; an item only the old memory list had is dropped."""
    from ltrr.bench.workload import with_memory
    from ltrr.records import CandidateRecord, Hit
    from retrievers import Candidate

    old = [CandidateRecord(item_id="a", hits={"lexical": Hit(rank=1, score=2.0), "memory": Hit(rank=3, score=1.0)}),
           CandidateRecord(item_id="b", hits={"memory": Hit(rank=1, score=1.5)})]
    learned = [Candidate(item_id="c", score=1.9, strategy="memory", rank=1),
               Candidate(item_id="a", score=1.2, strategy="memory", rank=2)]
    got = {c.item_id: {s: h.rank for s, h in c.hits.items()} for c in with_memory(old, learned)}
    assert got == {"a": {"lexical": 1, "memory": 2}, "c": {"memory": 1}}
