"""`ltrr bench`'s output: the JSON line, `benchmarks/report.md` and its plots.

JSON (`--json`'s last line), per workload:
    static:      [{plan, cost_ms, strategies, ndcg@10, recall}]
    ltrr:        [{price, cost_ms, strategies, ndcg@10, recall}]
    full_fanout, rrf: {cost_ms, ndcg@10, recall}
    drift:       {scenario: {ltrr, best_fixed, pre_change_best}}
(the report's per-workload JSON under report/ keeps everything else: intervals, dominance,
curves, retrains). Plots: cost against held-out nDCG@10 with the static cloud, its Pareto
frontier, ltrr's points, full fan-out and RRF, each with its 95 % bootstrap interval; and
per drift scenario the rolling reward of ltrr and the fixed plans, with the change marked.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ltrr.bench.frontier import Point, pareto
from ltrr.bench.run import BenchConfig, bench_workload
from ltrr.bench.workload import load_workload

KEEP = ("plan", "price", "cost_ms", "strategies", "ndcg@10", "recall")


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON line's form of one workload's result."""
    def pick(row: dict) -> dict:
        return {k: row[k] for k in KEEP if k in row}
    return {"static": [pick(r) for r in result["static"]], "ltrr": [pick(r) for r in result["ltrr"]],
            "full_fanout": pick(result["full_fanout"]), "rrf": pick(result["rrf"]),
            "drift": {s: {k: d[k] for k in ("ltrr", "best_fixed", "pre_change_best")}
                      for s, d in result["drift"].items()}}


def _ci(p: Point, rng: np.random.Generator) -> tuple[float, float, float]:
    r = p.row(rng)
    return r["ndcg@10"], r["ndcg@10"] - r["ndcg_ci"][0], r["ndcg_ci"][1] - r["ndcg@10"]


def plot_frontier(name: str, points: list[Point], out: Path) -> str:
    rng = np.random.default_rng(0)
    statics = [p for p in points if not p.name.startswith("ltrr@") and p.name not in ("full_fanout", "rrf")]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for p in statics:
        y, lo, hi = _ci(p, rng)
        ax.errorbar(p.cost_ms.mean(), y, yerr=[[lo], [hi]], fmt="o", ms=2.5, color="0.7", elinewidth=0.4, alpha=0.6)
    front = pareto(statics)
    ax.plot([p.cost_ms.mean() for p in front], [p.ndcg.mean() for p in front], "-", color="0.35", lw=1,
            label="static plans (grey) and their Pareto frontier")
    for p, style, label in [(next(q for q in points if q.name == "full_fanout"), "s", "full fan-out"),
                            (next(q for q in points if q.name == "rrf"), "D", "RRF (lexical+dense, 100 each)")]:
        y, lo, hi = _ci(p, rng)
        ax.errorbar(p.cost_ms.mean(), y, yerr=[[lo], [hi]], fmt=style, ms=6, capsize=3, label=label)
    ltrr = [p for p in points if p.name.startswith("ltrr@")]
    for i, p in enumerate(ltrr):
        y, lo, hi = _ci(p, rng)
        ax.errorbar(p.cost_ms.mean(), y, yerr=[[lo], [hi]], fmt="*", ms=11, capsize=3, color="tab:red",
                    label="ltrr (one point per budget)" if i == 0 else None)
    ax.set_xscale("log")
    ax.set(xlabel="cost: ms of compute per request (log scale)", ylabel="held-out nDCG@10",
           title=f"{name}: cost-quality frontier (95 % bootstrap intervals)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / f"{name}-frontier.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_drift(name: str, drift: dict[str, Any], out: Path) -> str | None:
    if not drift:
        return None
    fig, axes = plt.subplots(len(drift), 1, figsize=(7.5, 2.6 * len(drift)), squeeze=False)
    for ax, (scenario, d) in zip(axes[:, 0], drift.items()):
        w = 50
        for key, label in [("ltrr", "ltrr"), (d["best_fixed_plan"], f"best fixed after: {d['best_fixed_plan']}"),
                           (d["pre_change_best_plan"], f"best before: {d['pre_change_best_plan']}")]:
            y = np.convolve(np.asarray(d["curves"][key]), np.ones(w) / w, mode="valid")
            ax.plot(np.arange(w, w + len(y)), y, lw=1, label=label[:60])
        ax.axvline(d["change_at"], color="black", ls="--", lw=0.8)
        for r in d["retrains"]:
            ax.axvline(r["at"], color="grey", ls=":" if not r["promoted"] else "-", lw=0.5)
        ax.set(title=f"{name}: {scenario} (change at {d['change_at']}, recovery "
                     f"{d['recovery_requests']} requests)", ylabel=f"reward ({w}-request mean)")
        ax.legend(fontsize=6)
    axes[-1, 0].set(xlabel="request")
    fig.tight_layout()
    path = out / f"{name}-drift.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _md(name: str, r: dict[str, Any], plots: list[str]) -> list[str]:
    lines = [f"## {name}", "", f"{r['heldout_queries']} held-out queries; ltrr trained on {r['training']['requests']} "
             f"logged requests ({r['training']['full_information']} with off-path shadow), "
             f"{r['training']['known_plan_share']:.1%} of plan gains known exactly on average; {r['seconds']} s.", "",
             "| system | budget ms | price / 10 ms | cost ms | strategies | nDCG@10 (95 % CI) | recall | best static "
             "within its cost | gain (95 % CI) | dominated |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in r["ltrr"]:
        b = p["best_static_within"] or {}
        lines.append(f"| ltrr | {p['budget_ms']} | {p['price']} | {p['cost_ms']} | {p['strategies']} | "
                     f"{p['ndcg@10']} ({p['ndcg_ci'][0]}..{p['ndcg_ci'][1]}) | {p['recall']} | "
                     f"{b.get('plan', '-')} ({b.get('cost_ms', '-')} ms, {b.get('ndcg@10', '-')}) | "
                     f"{b.get('gain', '-')} ({'..'.join(map(str, b.get('gain_ci', [])))}) | "
                     f"{len(p['dominated_by'])} |")
    for key in ("full_fanout", "rrf"):
        p = r[key]
        lines.append(f"| {key} | | | {p['cost_ms']} | {p['strategies']} | {p['ndcg@10']} "
                     f"({p['ndcg_ci'][0]}..{p['ndcg_ci'][1]}) | {p['recall']} | | | |")
    lines += ["", f"Static Pareto frontier ({len(r['static'])} plans evaluated): " +
              ", ".join(f"`{n}`" for n in r["pareto"]), "",
              f"Cheapest ltrr point within 0.01 of full fan-out's nDCG@10: {r['reaches_full_fanout']} ms "
              f"(full fan-out: {r['full_fanout']['cost_ms']} ms).", ""]
    if r["drift"]:
        lines += ["| drift scenario | ltrr after | best fixed after (hindsight) | best before the change | recovery "
                  "(requests) |", "|---|---|---|---|---|"]
        for s, d in r["drift"].items():
            lines.append(f"| {s} | {d['ltrr']} | {d['best_fixed']} (`{d['best_fixed_plan']}`) | "
                         f"{d['pre_change_best']} (`{d['pre_change_best_plan']}`) | {d['recovery_requests']} |")
        lines.append("")
    lines += [f"![{p}](report/{p})" for p in plots] + [""]
    return lines


def run_bench(workloads: list[str], cfg: BenchConfig, state: Path, out_dir: Path, data_root: Path | None = None,
              progress: bool = True) -> dict[str, Any]:
    import ray

    # every index is built before Ray and RLlib start: a Lucene indexing run in a process that
    # already started Ray and RLlib crashed the JVM (SIGSEGV in a ForkJoinPool thread)
    loaded = [load_workload(w, state, data_root, progress) for w in workloads]
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    (out_dir / "report").mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    try:
        for i, wl in enumerate(loaded):
            result, points = bench_workload(wl, cfg, state, i < cfg.drift_workloads, progress)
            plots = [plot_frontier(wl.name, points, out_dir / "report")]
            d = plot_drift(wl.name, result["drift"], out_dir / "report")
            plots += [d] if d else []
            result["plots"] = [f"report/{p}" for p in plots]
            (out_dir / "report" / f"{wl.name}.json").write_text(json.dumps(result, indent=1, default=str))
            results[wl.name] = result
    finally:
        if started:
            ray.shutdown()
    everything = {f.stem: json.loads(f.read_text()) for f in sorted((out_dir / "report").glob("*.json"))}
    lines = ["# ltrr bench: the cost-quality frontier", "", "Written by `ltrr bench` (ltrr/bench/). Config: "
             f"`{cfg.model_dump_json()}`.", ""]
    for name, r in everything.items():
        lines += _md(name, r, [Path(p).name for p in r.get("plots", [])])
    (out_dir / "report.md").write_text("\n".join(lines))
    return {name: summary(r) for name, r in results.items()}
