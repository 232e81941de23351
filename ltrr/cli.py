"""The `ltrr` command line.

    ltrr index --dataset builtin:music-demo --out indexes/music-demo
    ltrr eval  --index indexes/music-demo --dataset builtin:music-demo --split test --strategy all
    ltrr up | ltrr down | ltrr simulate --requests 500
    ltrr train-ranker --index indexes/music-demo --dataset builtin:music-demo --from qrels --promote
    ltrr bench --workload music-demo --json

Errors in the user's input (missing data, an index from other data, a bad query or k)
print one line `error: ...` and exit with status 2; they never print a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from core.env import configure
from core.errors import BadRequest, DatasetError, IndexError_
from core.paths import DASHBOARD_URL, DEFAULT_STATE, HTTP_PORT, SERVE_CONFIG_TEMPLATE, StatePaths, base_url
from retrievers import KNOWN_STRATEGIES, STRATEGIES
from retrievers.encoders import PRECISIONS

EXIT_USAGE = 2


def _index(args: argparse.Namespace) -> int:
    from ingest.registry import load_dataset
    from retrievers.index import build_index

    shards: dict[str, int] = {}
    for part in filter(None, (args.shards or "").split(",")):
        name, sep, n = part.partition("=")
        if not sep or not n.strip().isdigit():
            raise BadRequest(f"--shards takes NAME=N[,NAME=N]; got {part!r}")
        shards[name.strip()] = int(n)
    dense = None
    if args.dense_max_tokens is not None or args.dense_precision is not None:
        from retrievers.dense import MAX_TOKENS, MIN_TOKENS, DenseConfig

        tokens = args.dense_max_tokens if args.dense_max_tokens is not None else DenseConfig().max_seq_length
        if not MIN_TOKENS <= tokens <= MAX_TOKENS:
            raise BadRequest(f"--dense-max-tokens must be between {MIN_TOKENS} and {MAX_TOKENS}, got {tokens}")
        dense = DenseConfig(max_seq_length=tokens, precision=args.dense_precision or "auto")
    dataset = load_dataset(args.dataset)
    strategies = args.strategies.split(",") if args.strategies else None
    bulk_encode, started_ray = None, False
    if args.encode_with == "ray":
        import ray

        from deployments.bulk_encode import ray_bulk_encode

        started_ray = not ray.is_initialized() and not os.environ.get("RAY_ADDRESS")
        bulk_encode = ray_bulk_encode
    try:
        manifest = build_index(dataset, Path(args.out), strategies, rebuild=args.rebuild, bulk_encode=bulk_encode,
                               shards=shards, dense=dense)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    print(json.dumps({"index": args.out, "dataset": manifest["dataset"], "counts": manifest["counts"],
                      "strategies": manifest["strategies"], "shards": manifest.get("shards", {})},
                     indent=None if args.json else 2))
    return 0


def _print_table(results: list[dict]) -> None:
    head = f"{'strategy':<12}{'nDCG@10':>9}{'R@100':>8}{'MRR@10':>8}{'p50 ms':>9}{'p99 ms':>9}"
    print(head)
    for r in results:
        print(f"{r['strategy']:<12}{r['ndcg@10']:>9.3f}{r['recall@100']:>8.3f}{r['mrr@10']:>8.3f}"
              f"{r['latency_ms']['p50']:>9.2f}{r['latency_ms']['p99']:>9.2f}")
    intents = sorted({i for r in results for i in r.get("by_intent", {})})
    if intents:
        print("\nnDCG@10 by intent")
        print(f"{'strategy':<12}" + "".join(f"{i:>13}" for i in intents))
        for r in results:
            print(f"{r['strategy']:<12}" + "".join(f"{r['by_intent'][i]['ndcg@10']:>13.3f}" for i in intents))


def _eval(args: argparse.Namespace) -> int:
    from ingest.registry import load_dataset
    from ltrr.evaluate import evaluate
    from retrievers.index import IndexHandle

    if not 1 <= args.k <= 1000:
        raise BadRequest(f"--k must be between 1 and 1000, got {args.k}")
    index = IndexHandle.open(Path(args.index))
    dataset = load_dataset(args.dataset)
    names = [*index.strategies, "rrf"] if args.strategy == "all" else [args.strategy]
    for name in names:
        if name != "rrf" and name not in STRATEGIES:
            raise BadRequest(f"unknown strategy {name!r}; known: {', '.join([*STRATEGIES, 'rrf', 'all'])}")
    results = [evaluate(index, dataset, args.split, name, args.k, progress=not args.json) for name in names]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {r["strategy"]: r for r in results}))
    else:
        _print_table(results)
    return 0


def _base_url(args: argparse.Namespace) -> str:
    return base_url(args.port)


def _up(args: argparse.Namespace) -> int:
    from deployments import cluster
    from ingest.registry import load_dataset
    from retrievers.index import build_index

    state = Path(args.state)
    index_dir = Path(args.index or f"indexes/{cluster.slug(args.dataset)}")
    build_index(load_dataset(args.dataset), index_dir)  # builds only what is missing; refuses other data
    started = cluster.start_ray(args.num_cpus)
    print(f"ray: {'started a head node on 127.0.0.1' if started else 'using the running cluster'}")
    rendered = StatePaths(state).serve_config
    token = cluster.admin_token(state)
    cluster.render_config(Path(args.config), rendered, index_dir, state, args.port, {"admin_token": token})
    rendered.chmod(0o600)  # it holds the admin token
    cluster.deploy(rendered)
    health = cluster.wait_healthy(_base_url(args), args.timeout)
    print(json.dumps({"status": "healthy", "url": _base_url(args), "config": str(rendered), **health}))
    print(f"try: curl -s -X POST {_base_url(args)}/search -H 'content-type: application/json' "
          "-d '{\"query\": \"chill jazz\", \"k\": 5}'")
    return 0


def _down(args: argparse.Namespace) -> int:
    from deployments import cluster

    cluster.down()
    print("ltrr: serve shut down, ray stopped")
    return 0


def _search(args: argparse.Namespace) -> int:
    """One query against the running service, printed compactly (or its whole JSON answer)."""
    import httpx

    r = httpx.post(f"{_base_url(args)}/search", json={"query": args.query, "k": args.k, "related": 3}, timeout=30)
    if r.status_code != 200:
        print(f"error: HTTP {r.status_code}: {r.text[:500]}", file=sys.stderr)
        return 1
    body = r.json()
    if args.json:
        print(json.dumps(body))
        return 0
    plan = body["plan"]
    print(f"{args.query!r}: policy {plan['policy_version']} (propensity {plan['propensity']:.3g}"
          f"{', shadow' if plan['shadow'] else ''}), ranker {body['versions']['ranker']}, "
          f"{body['timings_ms'].get('total', 0):.0f} ms")
    print("plan: " + ", ".join(f"{s} {b}" for s, b in plan["budgets"].items() if b))
    for item in body["results"]:
        f = item["fields"]
        label = " - ".join(v for k, v in f.items() if k in ("title", "artist")) or next(iter(f.values()), item["item_id"])
        print(f"{item['rank']:>3}. {label[:70]:<70} {','.join(item['strategies'])}")
    for e in body.get("entities", []) + body.get("related", []):
        print(f"     {e['type']}: {e['name']}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import asyncio

    from ingest.registry import load_dataset
    from ltrr.simulate import simulate

    if args.requests < 1:
        raise BadRequest("--requests must be at least 1")
    result = asyncio.run(simulate(_base_url(args), load_dataset(args.dataset), args.split, args.requests,
                                  args.concurrency, args.seed))
    print(json.dumps(result))
    return 0 if result["counts_match"] else 1


def _train_ranker(args: argparse.Namespace) -> int:
    from deployments import cluster
    from ingest.registry import load_dataset
    from ranking import train
    from retrievers.index import IndexHandle

    os.nice(10)  # training shares the machine with the service: let serving win the CPU
    os.environ.setdefault("LTRR_TORCH_THREADS", "1")
    paths = StatePaths(args.state)
    models_root = paths.ranker_models
    index = IndexHandle.open(Path(args.index))
    from engine.feedback_store import read_export

    requests, events = [], []
    if args.source == "qrels":
        out = train.train_from_qrels(index, load_dataset(args.dataset), args.split, models_root=models_root)
    else:
        logs = Path(args.logs) if args.logs else _export_logs(paths, args.shards)
        requests, events = read_export(logs)
        out = train.train_from_clicks(requests, events, index.catalog(), models_root=models_root)
    manifest = json.loads((out / "manifest.json").read_text())
    print(json.dumps({"version": out.name, "dir": str(out), "metrics": manifest.get("metrics", {})}))
    if args.promote:
        from learning.ranker_gate import promote_ranker

        if args.source == "qrels":  # the gate judges on the service's logged requests
            requests, events = read_export(_export_logs(paths, args.shards))
        promoter = cluster.ServePromoter(paths.root)
        result = promote_ranker(paths, promoter, out.name, requests, events, index.catalog(), "train-ranker",
                                args.tolerance)
        if not result["promoted"]:
            print(json.dumps({"refused": out.name, "serving": result["previous"], "gate": result["gate"]}))
            return 3
        cluster.wait_healthy(_base_url(args), args.timeout, expect_ranker=out.name)
        print(json.dumps({"promoted": out.name, "previous": result["previous"], "gate": result["gate"]}))
    return 0


def _scale(args: argparse.Namespace) -> int:
    from deployments import cluster
    from deployments.retriever import deployment_name
    from retrievers import strategy_class

    rendered = StatePaths(args.state).serve_config
    custom = {}
    if rendered.is_file():  # user strategies registered by import path in the running config
        import yaml

        custom = (yaml.safe_load(rendered.read_text())["applications"][0].get("args") or {}).get("custom_strategies")
    if args.strategy not in (custom or {}):
        strategy_class(args.strategy)  # BadRequest on unknown names
    if args.replicas is None and args.min is None and args.max is None:
        raise BadRequest("give --replicas N, or --min and/or --max")
    if args.replicas is not None:
        if args.replicas < 1:
            raise BadRequest("--replicas must be at least 1")
        changes = {"num_replicas": args.replicas, "autoscaling_config": None}
    else:
        current = cluster.deployment_entry(rendered, deployment_name(args.strategy)).get("autoscaling_config") or {}
        lo = args.min if args.min is not None else current.get("min_replicas", 1)
        hi = args.max if args.max is not None else current.get("max_replicas", max(lo, 1))
        if not 1 <= lo <= hi:
            raise BadRequest(f"need 1 <= min <= max, got min={lo} max={hi}")
        changes = {"num_replicas": None, "autoscaling_config": {**current, "min_replicas": lo, "max_replicas": hi}}
    entry = cluster.redeploy_with(StatePaths(args.state).serve_config, deployment_name(args.strategy), changes)
    print(json.dumps({"deployment": entry["name"], **{k: v for k, v in entry.items() if k != "name"}}))
    return 0


QUICK = {"workloads": ["builtin:music-demo?n_tracks=600"], "requests": 300, "retrain_every": 150,
         "ppo_iterations": 1, "warm_start_steps": 100, "drift_requests": 150, "heldout_max": 40, "mixed_plans": 10,
         "cost_queries": 5, "budget_shares": (0.1, 0.4, 0.8)}


def _shares(text: str) -> tuple[float, ...]:
    """--budget-shares: comma-separated numbers (their range is `BenchConfig`'s to check)."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise BadRequest(f"--budget-shares takes comma-separated numbers; got {text!r}") from None


def _bench(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ltrr.bench.report import run_bench
    from ltrr.bench.run import BenchConfig
    from ltrr.bench.stream import StreamConfig
    from rl.reward import RewardConfig
    from rl.train import PPOConfig

    quick = QUICK if args.quick else {}
    workloads = (args.workload.split(",") if args.workload else
                 quick.get("workloads", ["music-demo", "spotify", "scifact"]))
    stream = {k: v for k, v in {"requests": args.requests or quick.get("requests"),
                                "retrain_every": args.retrain_every or quick.get("retrain_every"),
                                "seed": args.seed}.items() if v is not None}
    ppo = {k: v for k, v in {"iterations": args.ppo_iterations or quick.get("ppo_iterations"),
                             "warm_start_steps": quick.get("warm_start_steps")}.items() if v is not None}
    if ppo:
        stream["ppo"] = PPOConfig(**ppo)
    if args.lookahead:
        stream["policy"] = StreamConfig().policy.model_copy(update={"lookahead": True})
    reward = {k: v for k, v in {"counterfactual": args.counterfactual, "query_labels": args.query_labels}.items() if v}
    bench = {k: v for k, v in {"drift_requests": args.drift_requests or quick.get("drift_requests"),
                               "heldout_max": quick.get("heldout_max"), "mixed_plans": quick.get("mixed_plans"),
                               "cost_queries": quick.get("cost_queries"),
                               "budget_shares": _shares(args.budget_shares) if args.budget_shares is not None else
                               quick.get("budget_shares"),
                               "scenarios": tuple(args.scenarios.split(",")) if args.scenarios else None,
                               "drift_workloads": args.drift_workloads,
                               "call_overhead_ms": args.call_overhead_ms,
                               "reward": RewardConfig(**reward) if reward else None}.items()
             if v is not None}
    try:
        cfg = BenchConfig(stream=StreamConfig(**stream), **bench)
    except ValidationError as exc:  # one line naming each bad setting, not pydantic's report
        raise BadRequest("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    out = run_bench(workloads, cfg, Path(args.state), Path(args.out), Path(args.data) if args.data else None,
                    progress=not args.json)
    print(f"report: {Path(args.out) / 'report.md'}", file=sys.stderr)
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


def _export_logs(paths: StatePaths, n_shards: int) -> Path:
    """Ask the running feedback actors to write their logs as Parquet; return the directory."""
    import asyncio

    import ray

    from deployments.feedback import RayFeedback

    out = paths.new_export().resolve()
    ray.init(address="auto", namespace="ltrr", logging_level="ERROR")
    try:
        asyncio.run(RayFeedback.lookup(n_shards).export(out))
        return out
    finally:
        ray.shutdown()


def _job(args: argparse.Namespace, action: str) -> int:
    from deployments import cluster, jobs

    state = Path(args.state)
    if not StatePaths(state).serve_config.is_file():
        raise cluster.ClusterError(f"{StatePaths(state).serve_config} does not exist: is ltrr up (with this --state)?")
    while True:
        job_id = jobs.submit(DASHBOARD_URL, state, action, args.what, getattr(args, "tolerance", None),
                             getattr(args, "ppo_iterations", None))
        print(json.dumps({"job_id": job_id, "status": "SUBMITTED"}), flush=True)
        if args.wait or getattr(args, "every", None):
            info = jobs.wait(DASHBOARD_URL, job_id, args.timeout)
            print(json.dumps({k: v for k, v in info.items() if k != "log_tail"} if info["status"] == "SUCCEEDED"
                             else info, default=str), flush=True)
            if info["status"] != "SUCCEEDED" and not getattr(args, "every", None):
                return 1
        if not getattr(args, "every", None):
            return 0
        time.sleep(args.every)


def _retrain(args: argparse.Namespace) -> int:
    if args.every is not None and args.every < 60:
        raise BadRequest("--every must be at least 60 seconds")
    return _job(args, "retrain")


def _rollback(args: argparse.Namespace) -> int:
    return _job(args, "rollback")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ltrr", description="ltrr: learning to rank and retrieve")
    sub = p.add_subparsers(dest="command", required=True)

    ix = sub.add_parser("index", help="build every strategy's index for a dataset")
    ix.add_argument("--dataset", required=True, help="a BEIR or Spotify directory, or builtin:music-demo")
    ix.add_argument("--out", required=True, help="index directory to create (or complete)")
    ix.add_argument("--strategies", help=f"comma-separated subset of: {','.join(KNOWN_STRATEGIES)} "
                    f"(default: {','.join(STRATEGIES)})")
    ix.add_argument("--shards", help="also split strategies into shards, e.g. lexical=2,dense=2")
    ix.add_argument("--encode-with", choices=["local", "ray"], default="local",
                    help="dense encoding in this process, or with Ray Data map_batches (a local Ray instance, "
                    "or the cluster RAY_ADDRESS names)")
    ix.add_argument("--dense-max-tokens", type=int, metavar="N",
                    help="tokens of each item's text the dense strategies encode (default 256; longer text is "
                    "truncated; fewer encode long documents faster, at some quality)")
    ix.add_argument("--dense-precision", choices=PRECISIONS,
                    help="MiniLM's arithmetic (default auto: bf16 where the CPU has native bf16 instructions, "
                    "about twice as fast, vectors within a cosine of 0.9999 of fp32; else fp32)")
    ix.add_argument("--rebuild", action="store_true", help="rebuild strategies that already exist")
    ix.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    ix.set_defaults(func=_index)

    ev = sub.add_parser("eval", help="evaluate a strategy on a dataset split")
    ev.add_argument("--index", required=True, help="index directory built by `ltrr index`")
    ev.add_argument("--dataset", required=True, help="the dataset the index was built from")
    ev.add_argument("--split", default="test", help="query split (default: test)")
    ev.add_argument("--strategy", default="all",
                    help=f"one of {', '.join(STRATEGIES)}, rrf (lexical+dense), or all (default)")
    ev.add_argument("--k", type=int, default=100, help="candidates per query (1..1000, default 100)")
    ev.add_argument("--json", action="store_true", help="last line printed is one JSON object")
    ev.set_defaults(func=_eval)

    def serving(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--state", default=DEFAULT_STATE, help="state directory: feedback logs, models, rendered config")
        sp.add_argument("--port", type=int, default=HTTP_PORT, help=f"HTTP port on 127.0.0.1 (default {HTTP_PORT})")
        sp.add_argument("--timeout", type=float, default=600, help="seconds to wait for the service")

    up = sub.add_parser("up", help="start Ray on 127.0.0.1 if needed, build missing indexes, deploy, wait")
    up.add_argument("--dataset", default="builtin:music-demo", help="dataset to serve (default builtin:music-demo)")
    up.add_argument("--index", help="index directory (default indexes/<dataset>)")
    up.add_argument("--config", default=str(SERVE_CONFIG_TEMPLATE),
                    help="Serve config template (default: the repository's serve_config.yaml)")
    up.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local head node (default 2)")
    serving(up)
    up.set_defaults(func=_up)

    dn = sub.add_parser("down", help="shut Serve down and stop Ray")
    dn.set_defaults(func=_down)

    se = sub.add_parser("search", help="send one query to the running service and print the answer")
    se.add_argument("query")
    se.add_argument("--k", type=int, default=5)
    se.add_argument("--json", action="store_true", help="print the whole JSON answer")
    serving(se)
    se.set_defaults(func=_search)

    sim = sub.add_parser("simulate", help="play simulated users (searches, clicks) against the running service")
    sim.add_argument("--requests", type=int, default=100)
    sim.add_argument("--dataset", default="builtin:music-demo")
    sim.add_argument("--split", default="train")
    sim.add_argument("--concurrency", type=int, default=4)
    sim.add_argument("--seed", type=int, default=0)
    serving(sim)
    sim.set_defaults(func=_simulate)

    sc = sub.add_parser("scale", help="change one strategy's replicas; the other deployments are untouched")
    sc.add_argument("strategy")
    sc.add_argument("--replicas", type=int, help="fixed number of replicas")
    sc.add_argument("--min", type=int, help="autoscaling minimum")
    sc.add_argument("--max", type=int, help="autoscaling maximum")
    serving(sc)
    sc.set_defaults(func=_scale)

    tr = sub.add_parser("train-ranker", help="train the XGBoost ranker from qrels or from logged clicks")
    tr.add_argument("--index", required=True)
    tr.add_argument("--dataset", help="dataset with qrels (for --from qrels)")
    tr.add_argument("--from", dest="source", choices=["qrels", "clicks"], default="qrels")
    tr.add_argument("--split", default="train")
    tr.add_argument("--logs", help="directory of exported Parquet logs (default: export from the running actors)")
    tr.add_argument("--shards", type=int, default=2, help="number of feedback shards (default 2)")
    tr.add_argument("--promote", action="store_true", help="serve the new version (hot swap through user_config) "
                    "if it passes the gate against the serving ranker on held-out logged requests; exit 3 if not")
    tr.add_argument("--tolerance", type=float, default=0.0,
                    help="the gate promotes unless held-out click nDCG@10 drops by more than this")
    serving(tr)
    tr.set_defaults(func=_train_ranker)

    rt = sub.add_parser("retrain", help="submit a retraining Ray Job: bandit (OPE-gated), ranker, or all")
    rt.add_argument("--what", choices=["bandit", "ranker", "all"], default="all")
    rt.add_argument("--tolerance", type=float, help="OPE gate tolerance in reward units (default 0.02)")
    rt.add_argument("--ppo-iterations", type=int, help="the bandit's PPO training iterations (1..1000, default "
                    "60; fewer train faster, on the same full-information warm start)")
    rt.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    rt.add_argument("--every", type=float, help="schedule: submit again every N seconds (runs until interrupted)")
    serving(rt)
    rt.set_defaults(func=_retrain)

    rb = sub.add_parser("rollback", help="serve the previously promoted bandit or ranker version (a Ray Job)")
    rb.add_argument("--what", choices=["bandit", "ranker"], required=True)
    rb.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    serving(rb)
    rb.set_defaults(func=_rollback)

    bn = sub.add_parser("bench", help="the proof: ltrr's cost-quality frontier against every static plan, and drift")
    bn.add_argument("--workload", help="comma-separated: music-demo, spotify, scifact, beir:DIR or builtin:SPEC "
                    "(default: the first three)")
    bn.add_argument("--data", help="real data root (default: $LTRR_DATA) for spotify and scifact")
    bn.add_argument("--quick", action="store_true", help="a short run on a 600-track catalogue (what CI runs)")
    bn.add_argument("--requests", type=int, help="requests in each workload's training stream")
    bn.add_argument("--retrain-every", type=int, help="retrain the bandit every N requests of the stream")
    bn.add_argument("--drift-requests", type=int, help="requests per drift scenario stream")
    bn.add_argument("--scenarios", help="comma-separated drift scenarios (default: all)")
    bn.add_argument("--drift-workloads", type=int, help="run the drift scenarios on the first N workloads (default 1)")
    bn.add_argument("--seed", type=int, help="seed of the streams, the users and the policies")
    bn.add_argument("--budget-shares", help="comma-separated: ltrr's frontier points, each a mean compute budget at "
                    "this share (0 < share <= 1) of the way from the cheapest static plan's cost to full fan-out's "
                    "(default: BenchConfig.budget_shares, eight from 0.02 to 0.8)")
    bn.add_argument("--ppo-iterations", type=int, help="PPO iterations per training, after the warm start")
    bn.add_argument("--call-overhead-ms", type=float, help="CPU ms one strategy call costs besides the strategy's "
                    "own work (a Serve hop; see BenchConfig)")
    bn.add_argument("--counterfactual", choices=["clicks", "click_model"], help="how retraining values the plans "
                    "a request did not serve (RewardConfig.counterfactual; default: clicks)")
    bn.add_argument("--query-labels", choices=["max", "rate"], help="what a query's other requests say of an item "
                    "(RewardConfig.query_labels; default: max)")
    bn.add_argument("--lookahead", action="store_true", help="ltrr fetches every strategy a plan calls 100 deep, "
                    "serves the plan's prefix and logs the rest (PolicyArgs.lookahead)")
    bn.add_argument("--state", default="state/bench", help="indexes, rankers and bandits of the bench")
    bn.add_argument("--out", default="benchmarks", help="where report.md and report/*.png go")
    bn.add_argument("--json", action="store_true", help="last line printed is one JSON object")
    bn.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    configure()
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, IndexError_, BadRequest, ValueError, RuntimeError) as exc:
        if os.environ.get("LTRR_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
