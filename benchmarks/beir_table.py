"""Lexical, dense and RRF on SciFact and Cranfield: the README's retrieval table.

What it does: builds the lexical (BM25 flat) and dense (all-MiniLM-L6-v2 + faiss exact)
indexes for each data set under indexes/<name>/ (kept, so a rerun only evaluates), then
evaluates lexical, dense and rrf on the test split with ltrr's own `evaluate`, and prints
a Markdown table (also written to benchmarks/beir_table.md).

How to run:   LTRR_DATA=../shared/data .venv/bin/python benchmarks/beir_table.py
Expect: about 3.5 minutes on 2 cores the first time (SciFact encoding ~130 s in bf16), and figures
close to ../shared/data/README.md: SciFact nDCG@10 lexical 0.679, dense 0.645, rrf ~0.72;
Cranfield 0.351, 0.382, 0.413.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ingest.beir import load_beir
from ltrr.evaluate import evaluate
from retrievers.index import IndexHandle, build_index

STRATEGIES = ("lexical", "dense", "rrf")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("LTRR_DATA", "../shared/data"))
    p.add_argument("--datasets", default="scifact,cranfield")
    p.add_argument("--indexes", default="indexes")
    p.add_argument("--out", default="benchmarks/beir_table.md")
    args = p.parse_args()
    rows, results = [], {}
    for name in args.datasets.split(","):
        ds = load_beir(Path(args.data) / name)
        out = Path(args.indexes) / name
        build_index(ds, out, ["lexical", "dense"])
        index = IndexHandle.open(out)
        res = {s: evaluate(index, ds, "test", s, k=100) for s in STRATEGIES}
        results[name] = res
        cells = " | ".join(f"{res[s]['ndcg@10']:.3f} / {res[s]['recall@100']:.3f}" for s in STRATEGIES)
        lat = " / ".join(f"{res[s]['latency_ms']['p50']:.1f}" for s in STRATEGIES)
        rows.append(f"| {name} ({res['lexical']['queries']} queries) | {cells} | {lat} |")
    table = "\n".join([
        "| test split: nDCG@10 / R@100 | lexical (BM25 flat) | dense (MiniLM, faiss flat) | rrf (k=60, top 1000) "
        "| p50 ms lexical / dense / rrf |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(table)
    Path(args.out).write_text(table + "\n")
    print(json.dumps({n: {s: {k: r[k] for k in ("ndcg@10", "recall@100", "mrr@10", "latency_ms")}
                          for s, r in res.items()} for n, res in results.items()}))


if __name__ == "__main__":
    main()
