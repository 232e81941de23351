"""How long a feedback shard takes to start (replay its log) as history grows.

    .venv/bin/python benchmarks/feedback_restart.py --events 10000,100000,1000000 [--per-request 10]

For each size it writes one shard's files the way the service does (one record's
`model_dump_json()` per line: requests with 10 candidates from two strategies, and
`--per-request` events on each), then times `FeedbackShard(dir, 0)` twice: first with no snapshot (the
whole log is replayed to rebuild the known requests, the seen event ids, the aggregates
and the memory updates, and the shard then snapshots them), then a restart from that
snapshot (engine/snapshot.py), which replays only the log's tail past it (at most
`FeedbackShard.SNAPSHOT_EVERY` lines in the service; none here). Prints one JSON line per size
and writes benchmarks/feedback_restart.json. Heavy on disk (about 1.3 GB at 1M events,
under --dir, removed afterwards) and CPU: run it alone.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from engine import snapshot
from engine.feedback_store import EVENTS, REQUESTS, FeedbackShard

TYPES = ("click", "play", "like", "skip")


def write_shard(root: Path, n_events: int, per_request: int, seed: int = 0) -> dict[str, int]:
    rng = random.Random(seed)
    shard = root / "shard-0"
    shard.mkdir(parents=True)
    n_requests = max(1, n_events // per_request)
    written = 0
    with open(shard / REQUESTS, "w") as reqs, open(shard / EVENTS, "w") as evs:
        for n in range(n_requests):
            rid = f"req-{n:09d}"
            items = [f"track-{rng.randrange(3000):05d}" for _ in range(10)]
            cands = [Candidate(item_id=i, hits={"lexical": Hit(r, 10.0 - r), "dense": Hit(11 - r, 0.1 * r)})
                     for r, i in enumerate(items, 1)]
            rec = RequestRecord(
                request_id=rid, ts=1.7e9 + n, query=f"query number {n % 5000}", user_id=f"user-{n % 20000}",
                features=[0.5] * 8, plan=PlanRecord(budgets={"lexical": 10, "dense": 10}, propensity=0.5,
                                                    policy_version="fixed-v1"),
                latency_ms={"lexical": 3.0, "dense": 9.0}, candidates=cands, shown=items, ranker_version="fallback-rrf")
            reqs.write(rec.model_dump_json() + "\n")
            for j in range(per_request if n < n_requests - 1 else n_events - written):
                ev = EventRecord(event_id=f"{rid}-e{j}", request_id=rid, item_id=items[j % 10],
                                 type=TYPES[rng.randrange(4)], position=j % 10 + 1, ts=1.7e9 + n + j)
                evs.write(ev.model_dump_json() + "\n")
                written += 1
    return {"requests": n_requests, "events": written,
            "bytes": (shard / REQUESTS).stat().st_size + (shard / EVENTS).stat().st_size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="feedback_restart")
    p.add_argument("--events", default="10000,100000,1000000", help="comma-separated history sizes")
    p.add_argument("--per-request", type=int, default=10, help="events per logged request")
    p.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    p.add_argument("--out", default=str(Path(__file__).with_name("feedback_restart.json")))
    args = p.parse_args(argv)
    rows = []
    for n in (int(x) for x in args.events.split(",")):
        root = Path(tempfile.mkdtemp(prefix="ltrr-restart-", dir=args.dir))
        try:
            t0 = time.perf_counter()
            sizes = write_shard(root, n, args.per_request)
            written_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            shard = FeedbackShard(root, 0)  # no snapshot yet: the whole log, then it forks a snapshot writer
            full_s = time.perf_counter() - t1
            t3 = time.perf_counter()
            shard.wait_for_snapshot()  # the child's time (the shard was answering meanwhile)
            child_s = time.perf_counter() - t3
            stats = shard.stats()
            shard.close()
            assert stats.events == sizes["events"] and stats.requests == sizes["requests"], (stats, sizes)
            snap = root / "shard-0" / snapshot.SNAPSHOT
            t2 = time.perf_counter()
            again = FeedbackShard(root, 0)  # the snapshot, and the tail past it
            snap_s = time.perf_counter() - t2
            assert again.stats() == stats
            tail = again.replayed_lines
            again.close()
            row = {"events": sizes["events"], "requests": sizes["requests"], "log_mb": round(sizes["bytes"] / 2**20, 1),
                   "full_replay_s": round(full_s, 2), "full_replay_us_per_event": round(full_s / n * 1e6, 2),
                   "from_snapshot_s": round(snap_s, 2), "tail_lines_replayed": tail,
                   "snapshot_mb": round(snap.stat().st_size / 2**20, 1) if snap.exists() else 0.0,
                   "snapshot_child_s": round(child_s, 2),
                   "write_s": round(written_s, 1),
                   "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)}
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(args.out).write_text(json.dumps({"per_request": args.per_request, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
