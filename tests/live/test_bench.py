"""`ltrr bench --quick` end to end: the measured costs, the stream through the service's own
pipeline with online retraining, the static cloud and ltrr's frontier points on held-out
queries, every drift scenario, report.md with its plots, and the --json line.

The figures themselves are the benchmark's business (benchmarks/report.md); this test
checks what must hold whatever PPO learns: the JSON has the promised form, full fan-out
finds at least what any plan finds and costs the most, the intervals contain their means,
and each ltrr point says which static plans (if any) dominate it."""
from __future__ import annotations

import json
import subprocess
import sys

from ltrr.cli import QUICK

NAME = "music-demo-n-tracks-600"
ROW = {"cost_ms", "strategies", "ndcg@10", "recall"}


def test_quick_bench_runs_and_reports(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ltrr.cli", "bench", "--quick", "--state", str(tmp_path / "state"),
                           "--out", str(tmp_path / "out"), "--json"], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(result) == [NAME]
    r = result[NAME]
    assert set(r) == {"static", "ltrr", "full_fanout", "rrf", "drift"}
    assert len(r["static"]) == 63 * 4 + QUICK["mixed_plans"]
    assert all(set(s) == ROW | {"plan"} for s in r["static"])
    assert len(r["ltrr"]) == len(QUICK["budget_shares"]) and all(set(p) == ROW | {"price"} for p in r["ltrr"])
    assert set(r["full_fanout"]) == ROW and set(r["rrf"]) == ROW
    full = r["full_fanout"]
    assert all(s["recall"] <= full["recall"] + 1e-9 and s["cost_ms"] <= full["cost_ms"] * 1.05 for s in r["static"])
    assert all(p["recall"] <= full["recall"] + 1e-9 and p["price"] > 0 for p in r["ltrr"])
    assert full["strategies"] == 6 and r["rrf"]["strategies"] == 2
    assert set(r["drift"]) == {"new_items", "latency", "failure", "query_mix"}
    assert all(set(d) == {"ltrr", "best_fixed", "pre_change_best"} for d in r["drift"].values())
    detail = json.loads((tmp_path / "out" / "report" / f"{NAME}.json").read_text())
    for p in detail["ltrr"]:
        assert p["ndcg_ci"][0] <= p["ndcg@10"] <= p["ndcg_ci"][1]
        assert isinstance(p["dominated_by"], list)
        assert all(d["cost_ms"] <= p["cost_ms"] and d["diff_ci"][0] > 0 for d in p["dominated_by"])
    assert detail["training"]["requests"] >= QUICK["requests"] - 10 and detail["training"]["full_information"] > 0
    assert len(detail["stream"]["retrains"]) == QUICK["requests"] // QUICK["retrain_every"] - 1
    for d in detail["drift"].values():
        assert d["best_fixed"] >= d["pre_change_best"] - 1e-9  # best in hindsight, among the same plans
        assert len(d["curves"]["ltrr"]) == QUICK["drift_requests"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"## {NAME}" in report and "| ltrr |" in report and "| drift scenario |" in report
    for plot in detail["plots"]:
        assert (tmp_path / "out" / plot).stat().st_size > 10_000
