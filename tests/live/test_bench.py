"""`ltrr bench` end to end on a small generated catalogue: the stream, two PPO retrainings
gated by OPE, the held-out evaluation, report.md with its plots, and the --json line.

The figures themselves are the benchmark's business (benchmarks/report.md); this test
checks what must hold whatever PPO learns: the oracle bounds every system's reward,
full fan-out's union contains every other system's, and the JSON has the promised form."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
    h = meta["headroom"]  # the bound is computed from the same tables as the JSON line
    assert h["best_fixed"] == pytest.approx(table["best_fixed"]["reward_last_quarter"], abs=2e-4)
    assert h["per_query_cv"] <= oracle + 1e-9 and h["best_fixed_last_quarter"] >= h["best_fixed"] - 1e-9
    assert "Headroom (`ltrr.bench.headroom`" in report
