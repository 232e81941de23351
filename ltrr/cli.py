"""The `ltrr` command line: build indexes and evaluate strategies.

    ltrr index --dataset builtin:music-demo --out indexes/music-demo
    ltrr eval  --index indexes/music-demo --dataset builtin:music-demo --split test --strategy all

Errors in the user's input (missing data, an index from other data, a bad query or k)
print one line `error: ...` and exit with status 2; they never print a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ltrr.data.model import DatasetError
from retrievers import STRATEGIES, BadRequest, IndexError_

EXIT_USAGE = 2


def _index(args: argparse.Namespace) -> int:
    from ltrr.data.registry import load_dataset
    from ltrr.index_store import build_index

    dataset = load_dataset(args.dataset)
    strategies = args.strategies.split(",") if args.strategies else None
    manifest = build_index(dataset, Path(args.out), strategies, rebuild=args.rebuild)
    print(json.dumps({"index": args.out, "dataset": manifest["dataset"], "counts": manifest["counts"],
                      "strategies": manifest["strategies"]}, indent=None if args.json else 2))
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
    from ltrr.data.registry import load_dataset
    from ltrr.evaluate import evaluate
    from ltrr.index_store import IndexHandle

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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ltrr", description="ltrr: learning to rank and retrieve")
    sub = p.add_subparsers(dest="command", required=True)

    ix = sub.add_parser("index", help="build every strategy's index for a dataset")
    ix.add_argument("--dataset", required=True, help="a BEIR or Spotify directory, or builtin:music-demo")
    ix.add_argument("--out", required=True, help="index directory to create (or complete)")
    ix.add_argument("--strategies", help=f"comma-separated subset of: {','.join(STRATEGIES)}")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, IndexError_, BadRequest) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
