"""`ltrr bench`: run the stream and the held-out evaluation per workload, write
`benchmarks/report.md` with PNG plots, and (with --json) print one JSON line:

    {workload: {system: {"reward_last_quarter", "candidate_recall", "ndcg@10",
                         "candidates_per_query", "p50_ms"}}}

Systems: ltrr, full_fanout, rrf, best_fixed, oracle and each strategy alone (budget 100).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ltrr.bench.headroom import bounds
from ltrr.bench.heldout import evaluate_heldout
from ltrr.bench.stream import StreamConfig, StreamResult, run_stream
from ltrr.bench.workload import Workload, load_workload
from retrievers import STRATEGIES
from rl.policy import ActionSpace
from rl.reward import cost_table

CURVE_SYSTEMS = ("ltrr", "best_fixed", "full_fanout", "rrf", "oracle")
KEYS = ("reward_last_quarter", "candidate_recall", "ndcg@10", "candidates_per_query", "p50_ms")


def last_quarter(x: np.ndarray) -> float:
    return float(np.mean(x[len(x) - len(x) // 4:]))


def plot(name: str, res: StreamResult, out_dir: Path) -> tuple[str, str]:
    """Learning curves (rolling mean reward) and cumulative regret against best_fixed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(res.rewards["ltrr"])
    w = max(n // 20, 10)
    kernel = np.ones(w) / w
    fig, ax = plt.subplots(figsize=(7, 4))
    for s in CURVE_SYSTEMS:
        ax.plot(np.arange(w, n + 1), np.convolve(res.rewards[s], kernel, mode="valid"), label=s)
    for r in res.retrains:
        ax.axvline(r["at"], color="grey", lw=0.6, ls=":" if not r["promoted"] else "--")
    ax.set(xlabel="request", ylabel=f"reward (rolling mean of {w})", title=f"{name}: reward over the stream")
    ax.legend(fontsize=8)
    curve = out_dir / f"{name}-learning.png"
    fig.tight_layout()
    fig.savefig(curve, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.cumsum(res.rewards["best_fixed"] - res.rewards["ltrr"]), label="ltrr vs best fixed plan")
    ax.plot(np.cumsum(res.rewards["oracle"] - res.rewards["ltrr"]), label="ltrr vs oracle", alpha=0.6)
    ax.axhline(0, color="black", lw=0.5)
    ax.set(xlabel="request", ylabel="cumulative regret", title=f"{name}: regret")
    ax.legend(fontsize=8)
    regret = out_dir / f"{name}-regret.png"
    fig.tight_layout()
    fig.savefig(regret, dpi=110)
    plt.close(fig)
    return curve.name, regret.name


def bench_one(wl: Workload, cfg: StreamConfig, state: Path, out_dir: Path,
              progress: bool) -> tuple[str, dict[str, dict], dict[str, Any]]:
    start = time.perf_counter()
    res = run_stream(wl, cfg, state / wl.name, progress)
    held = evaluate_heldout(wl, res, cfg, progress)
    table = {s: {"reward_last_quarter": round(last_quarter(res.rewards[s]), 4), **held[s]} for s in held}
    curve, regret = plot(wl.name, res, out_dir / "report")
    space = ActionSpace(STRATEGIES)
    costs = cost_table(res.latency, space, cfg.reward).ravel()
    bound = bounds(res.tables.astype(np.float64) + costs[None, :], costs, res.keys, space)
    bound["exploration_price"] = round(100 * (cfg.shadow_share_trained * bound["shadow_price_per_pct"]
                                              + cfg.epsilon * bound["epsilon_price_per_pct"]), 4)
    budgets = np.array([[b[s] for s in b] for b in res.ltrr_budgets[len(res.ltrr_budgets) * 3 // 4:]])
    meta = {"dataset": wl.dataset.spec, "traffic_queries": len(wl.traffic.judged()),
            "heldout_queries": len(wl.heldout.judged()), "items": len(wl.dataset.items),
            "best_fixed_plan": res.plans["best_fixed"], "retrains": res.retrains, "headroom": bound,
            "ltrr_mean_budgets_last_quarter": dict(zip(res.ltrr_budgets[0], np.round(budgets.mean(axis=0), 1)
                                                       .tolist())),
            "plots": [f"report/{curve}", f"report/{regret}"], "seconds": round(time.perf_counter() - start, 1)}
    return wl.name, table, meta


def write_report(results: dict[str, dict], metas: dict[str, dict], cfg: StreamConfig, path: Path) -> None:
    lines = ["# ltrr bench", "", "Written by `ltrr bench` (ltrr/bench/). Stream: "
             f"{cfg.requests} requests, Zipf {cfg.zipf}, {cfg.users} users, retrain every {cfg.retrain_every}, "
             f"shadow share {cfg.shadow_share} (then {cfg.shadow_share_trained} once a bandit serves), epsilon "
             f"{cfg.epsilon}, temperature {cfg.temperature}, PPO iterations {cfg.ppo.iterations}, seed {cfg.seed}. "
             "Reward: "
             f"{cfg.reward.model_dump()}.", "",
             "`reward_last_quarter` is the mean reward over the stream's last quarter; the other columns are "
             "measured on the held-out queries (ltrr: its last serving policy without the shadow share).", ""]
    for name, table in results.items():
        meta = metas[name]
        lines += [f"## {name}", "", f"Dataset `{meta['dataset']}`: {meta['items']} items, "
                  f"{meta['traffic_queries']} traffic queries, {meta['heldout_queries']} held-out queries; "
                  f"{meta['seconds']} s.", "",
                  "| system | reward (last quarter) | candidate recall | nDCG@10 | candidates/query | "
                  "strategies/query | p50 ms |", "|---|---|---|---|---|---|---|"]
        for s, row in sorted(table.items(), key=lambda kv: -kv[1]["reward_last_quarter"]):
            lines.append(f"| {s} | {row['reward_last_quarter']:.4f} | {row['candidate_recall']:.4f} | "
                         f"{row['ndcg@10']:.4f} | {row['candidates_per_query']:.1f} | "
                         f"{row['strategies_per_query']:.2f} | {row['p50_ms']:.2f} |")
        lines += ["", f"Best fixed plan in hindsight: `{meta['best_fixed_plan']}`. ltrr's mean budgets over the "
                  f"last quarter: `{meta['ltrr_mean_budgets_last_quarter']}`.", ""]
        if "headroom" in meta:  # ltrr.bench.headroom: could any contextual policy beat the best fixed plan?
            h = meta["headroom"]
            lines += [f"Headroom (`ltrr.bench.headroom`, last quarter): a per-query policy chosen by cross-validation "
                      f"reaches {h['per_query_cv']:.4f} against the best fixed plan's {h['best_fixed']:.4f} "
                      f"(headroom {h['headroom']:+.4f}); the best plan of the last quarter alone "
                      f"{h['best_fixed_last_quarter']:.4f}; ltrr's exploration (shadow share "
                      f"{cfg.shadow_share_trained}, epsilon {cfg.epsilon}) costs about {h['exploration_price']:.4f}; "
                      f"fetching every strategy at 100 instead of 10 adds {h['depth_gain']:.4f} to the gain.", ""]
        lines += [
                  "| retrain at | shadow contexts | train s | estimator | candidate | serving | "
                  "CI of the difference | promoted |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in meta["retrains"]:
            c = r["ope"]["comparison"]
            lines.append(f"| {r['at']} | {r['shadow_contexts']} | {r['train_seconds']} | {r['ope']['estimator']} | "
                         f"{c['target']:.4f} | {c['serving']:.4f} | {c['ci_low']:.4f}..{c['ci_high']:.4f} | "
                         f"{r['promoted']} |")
        lines += ["", *[f"![{p}]({p})" for p in meta["plots"]], ""]
    path.write_text("\n".join(lines))


def run_bench(workloads: list[str], cfg: StreamConfig, state: Path, out_dir: Path, data_root: Path | None = None,
              progress: bool = True) -> dict[str, dict]:
    results, metas = {}, {}
    # every index is built before the first PPO training: a Lucene indexing run in a process
    # that already started Ray and RLlib crashed the JVM (SIGSEGV in a ForkJoinPool thread)
    loaded = [load_workload(w, state, data_root, progress) for w in workloads]
    for wl in loaded:
        name, table, meta = bench_one(wl, cfg, state, out_dir, progress)
        results[name], metas[name] = table, meta
        (out_dir / "report").mkdir(parents=True, exist_ok=True)
        (out_dir / "report" / f"{name}.json").write_text(json.dumps({"results": table, "meta": meta}, indent=1,
                                                                    default=str))
    everything = {}  # earlier runs' workloads stay in the report
    for f in sorted((out_dir / "report").glob("*.json")):
        row = json.loads(f.read_text())
        everything[f.stem] = row
    write_report({k: v["results"] for k, v in everything.items()}, {k: v["meta"] for k, v in everything.items()},
                 cfg, out_dir / "report.md")
    return {w: {s: {k: row[k] for k in KEYS} for s, row in t.items()} for w, t in results.items()}
