"""Load with faults: steady /search + /feedback traffic while replicas and a feedback actor crash.

What it does: for --duration seconds it sends POST /search at --rate requests a second,
open loop (request i leaves at t0 + i/rate whatever the earlier ones are doing), with
queries of the dataset's train split (Zipf-repeated). For every answer with results it
plays the click model (graded by the qrels) and sends the clicks and plays it produced
to POST /feedback. Meanwhile it crashes, at 20 %, 45 % and 70 % of the run, one replica
of a retriever (--retriever, default dense), the ranker's replica and one feedback actor:
SIGKILL of the worker process (`--kill-with ray` uses ray.kill). After the run it keeps
probing (two searches a second, at most --recovery-timeout s) until every crashed part
has served again.

It reports: requests sent and the rate actually held; answers by status per endpoint
(sheds are 503/429, degraded answers are 200s naming failed strategies); p50/p99 latency
per endpoint; per crash the process killed, how long until the crashed part served a
request sent after the crash (`recovered_s`) and until a replacement process ran
(`replaced_s`); and feedback events acknowledged against the growth of the stored-events
count in /stats. Acknowledged = accepted + duplicates of every 202: event ids are unique,
so a duplicate is the actor's own retry of a call it had already stored. The two must
be equal.

How to run (the service must be up: `make demo`, or `ltrr up --dataset builtin:music-demo
--index indexes/music-demo`; this script needs the same machine for SIGKILL):

    .venv/bin/python benchmarks/load_faults.py --duration 180 --rate 20

It writes benchmarks/load_faults.json and .md (`--out DIR/NAME` elsewhere) and exits 1
if an answer was a 5xx other than a shed, a request got no answer, acknowledged !=
stored, or a crashed part did not recover.

Expect (2 cores, music-demo, 180 s at 20/s; the committed figures in load_faults.md):
the rate held at 20/s, every search 200 and every feedback 202 (no 500s, no sheds at
this rate), a few hundred degraded 200s around the crashes (the crashed strategy or the
ranker is left out until its replacement serves: 10-20 s for dense, which reloads its
model on busy cores), search p50 of about 0.2-0.3 s and p99 of 2-3 s (requests that wait
out the 1 s strategy or 2 s ranker timeout), and acknowledged events equal to stored.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from core.env import configure
from engine.feedback_store import shard_of
from ingest.registry import load_dataset
from ltrr.clicks import ClickModel
from ltrr.faults import Kill, kill_feedback_actor, kill_replica, replaced

SHEDS = (429, 503)
FAULT_AT = (0.2, 0.45, 0.7)


@dataclass
class Shot:
    endpoint: str
    sent: float  # seconds since the start
    status: int | str  # HTTP status, or the transport error's name
    ms: float
    phase: str = "load"
    failed: list[str] = field(default_factory=list)
    called: list[str] = field(default_factory=list)
    shard: int = -1

    @property
    def done(self) -> float:
        return self.sent + self.ms / 1000


class LoadRun:
    def __init__(self, base_url: str, dataset: str, rate: float, duration: float, retriever: str, how: str,
                 feedback_shard: int, seed: int = 0):
        ds = load_dataset(dataset)
        split = ds.split("train")
        self.queries = sorted(split.judged().items())
        self.qrels = split.qrels
        self.rng = np.random.default_rng(seed)
        weights = 1.0 / np.arange(1, len(self.queries) + 1) ** 1.1
        self.p = weights / weights.sum()
        self.clicker = ClickModel(seed=seed)
        self.base_url, self.rate, self.duration = base_url, rate, duration
        self.retriever, self.how, self.feedback_shard = retriever, how, feedback_shard
        self.shots: list[Shot] = []
        self.lag_ms: list[float] = []
        self.kills: list[tuple[float, Kill]] = []
        self.replaced_at: dict[int, float] = {}
        self.accepted = self.duplicates = self.unknown_events = 0
        self.t0 = 0.0
        self.shards = 1

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def one(self, client: httpx.AsyncClient, phase: str) -> None:
        qid, text = self.queries[int(self.rng.choice(len(self.queries), p=self.p))]
        sent = self.now()
        try:
            r = await client.post("/search", json={"query": text, "user_id": f"user-{self.rng.integers(50)}", "k": 10})
            status: int | str = r.status_code
        except httpx.HTTPError as exc:
            r, status = None, type(exc).__name__
        shot = Shot("search", sent, status, (self.now() - sent) * 1000, phase)
        self.shots.append(shot)
        if r is None or r.status_code != 200:
            return
        body = r.json()
        shot.failed = body["failed_strategies"]
        shot.called = [s for s, b in body["plan"]["budgets"].items() if b > 0]
        shot.shard = shard_of(body["request_id"], self.shards)
        shown = [it["item_id"] for it in body["results"]]
        events = [{"event_id": uuid.uuid4().hex, "item_id": e.item_id, "type": e.type, "position": e.position}
                  for e in self.clicker.simulate(shown, self.qrels.get(qid, {}))]
        if not events:
            return
        sent = self.now()
        try:
            f = await client.post("/feedback", json={"request_id": body["request_id"], "events": events})
            status = f.status_code
        except httpx.HTTPError as exc:
            f, status = None, type(exc).__name__
        self.shots.append(Shot("feedback", sent, status, (self.now() - sent) * 1000, phase, shard=shot.shard))
        if f is not None and f.status_code == 202:
            self.accepted += f.json()["accepted"]
            self.duplicates += f.json()["duplicates"]
        elif f is None or f.status_code >= 500:  # outcome unknown: stored or not
            self.unknown_events += len(events)

    async def faults(self) -> None:
        plan = [(lambda: kill_replica(f"retriever-{self.retriever}", "retriever", self.how)),
                (lambda: kill_replica("ranker", "ranker", self.how)),
                (lambda: kill_feedback_actor(self.feedback_shard, self.how))]
        for at, kill in zip(FAULT_AT, plan):
            await asyncio.sleep(max(0.0, at * self.duration - self.now()))
            self.kills.append((self.now(), await asyncio.to_thread(kill)))

    async def watch_replacements(self, until: float) -> None:
        while self.now() < until and len(self.replaced_at) < len(FAULT_AT):
            for i, (_, kill) in enumerate(list(self.kills)):
                if i not in self.replaced_at and await asyncio.to_thread(replaced, kill):
                    self.replaced_at[i] = self.now()
            await asyncio.sleep(1.0)

    def recovered(self, at: float, kill: Kill) -> float | None:
        """Seconds from the crash until the crashed part answered a request sent after it."""
        def served(s: Shot) -> bool:
            if s.sent <= at or s.status not in (200, 202):
                return False
            if kill.kind == "retriever":
                return s.endpoint == "search" and self.retriever in s.called and self.retriever not in s.failed
            if kill.kind == "ranker":
                return s.endpoint == "search" and "ranker" not in s.failed and bool(s.called)
            return s.endpoint == "feedback" and s.shard == self.feedback_shard
        done = [s.done for s in self.shots if served(s)]
        return round(min(done) - at, 2) if done else None

    async def run(self, recovery_timeout: float) -> dict:
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60, limits=limits) as client:
            stats = (await client.get("/stats")).json()
            before, self.shards = int(stats.get("events", 0)), int(stats.get("shards", 1))
            self.t0 = time.monotonic()
            watcher = asyncio.create_task(self.watch_replacements(self.duration + recovery_timeout))
            faults = asyncio.create_task(self.faults())
            tasks, n = [], int(self.duration * self.rate)
            for i in range(n):
                await asyncio.sleep(max(0.0, i / self.rate - self.now()))
                self.lag_ms.append((self.now() - i / self.rate) * 1000)
                tasks.append(asyncio.create_task(self.one(client, "load")))
            sending = self.now() if n < 2 else (n - 1) / self.rate + self.lag_ms[-1] / 1000
            await faults
            await asyncio.gather(*tasks)
            deadline = self.now() + recovery_timeout
            while self.now() < deadline and any(self.recovered(at, k) is None for at, k in self.kills):
                await asyncio.gather(self.one(client, "probe"), asyncio.sleep(0.5))
            await watcher
            after = int((await client.get("/stats")).json().get("events", 0))
        return self.report(n, sending, after - before)

    def report(self, n: int, sending: float, stored: int) -> dict:
        load = [s for s in self.shots if s.phase == "load"]
        out: dict = {"target_rate": self.rate, "duration_s": self.duration, "searches_sent": n,
                     "rate_held": round((n - 1) / sending, 2) if n > 1 else None, "send_lag_p99_ms": round(float(np.percentile(self.lag_ms, 99)), 1),
                     "feedback_sent": sum(s.endpoint == "feedback" for s in load), "statuses": {}, "latency_ms": {}}
        for ep in ("search", "feedback"):
            shots = [s for s in load if s.endpoint == ep]
            out["statuses"][ep] = {str(k): v for k, v in sorted(Counter(str(s.status) for s in shots).items())}
            ms = [s.ms for s in shots if isinstance(s.status, int)]
            out["latency_ms"][ep] = ({"p50": round(float(np.percentile(ms, 50)), 1),
                                      "p99": round(float(np.percentile(ms, 99)), 1)} if ms else None)
        first = self.kills[0][0] if self.kills else float("inf")
        calm = [s.ms for s in load if s.endpoint == "search" and s.status == 200 and s.done < first]
        out["search_before_first_crash_ms"] = ({"n": len(calm), "p50": round(float(np.percentile(calm, 50)), 1),
                                                "p99": round(float(np.percentile(calm, 99)), 1)} if calm else None)
        out["degraded_answers"] = sum(1 for s in load if s.endpoint == "search" and s.status == 200 and s.failed)
        out["probes"] = sum(1 for s in self.shots if s.phase == "probe" and s.endpoint == "search")
        out["faults"] = [{**k.to_json(), "at_s": round(at, 2), "recovered_s": self.recovered(at, k),
                          "replaced_s": round(self.replaced_at[i] - at, 2) if i in self.replaced_at else None}
                         for i, (at, k) in enumerate(self.kills)]
        acked = self.accepted + self.duplicates
        out["feedback_events"] = {"acked": acked, "accepted": self.accepted, "duplicates": self.duplicates,
                                  "stored": stored, "outcome_unknown": self.unknown_events, "match": acked == stored}
        errors = [s for s in self.shots if not isinstance(s.status, int) or (s.status >= 500 and s.status not in SHEDS)]
        out["errors"] = len(errors)
        out["ok"] = (not errors and acked == stored and len(self.kills) == len(FAULT_AT)
                     and all(f["recovered_s"] is not None for f in out["faults"]))
        return out


def markdown(r: dict, args: argparse.Namespace) -> str:
    def statuses(ep: str) -> str:
        return ", ".join(f"{k}: {v}" for k, v in r["statuses"][ep].items()) or "-"

    def lat(ep: str) -> str:
        v = r["latency_ms"][ep]
        return f"{v['p50']} / {v['p99']}" if v else "-"
    ev = r["feedback_events"]
    lines = [f"# Load with faults: {args.duration:.0f} s at {args.rate:g} searches/s ({args.dataset})", "",
             f"Produced by `.venv/bin/python benchmarks/load_faults.py --duration {args.duration:g} "
             f"--rate {args.rate:g} --retriever {args.retriever}` against `ltrr up` on 2 cores.", "",
             f"Rate held: **{r['rate_held']} searches/s** (target {r['target_rate']:g}; p99 send lag "
             f"{r['send_lag_p99_ms']} ms). Server errors (5xx other than a 503/429 shed) and requests left without "
             f"an answer: **{r['errors']}**.", "",
             "| endpoint | sent | answers by status | p50 / p99 ms |", "|---|---|---|---|",
             f"| /search | {r['searches_sent']} | {statuses('search')} | {lat('search')} |",
             f"| /feedback | {r['feedback_sent']} | {statuses('feedback')} | {lat('feedback')} |", "",
             f"Searches answered before the first crash: {calm['n']}, p50 / p99 {calm['p50']} / {calm['p99']} ms."
             if (calm := r["search_before_first_crash_ms"]) else "No search was answered before the first crash.", "",
             f"Degraded answers (200 naming a failed strategy or the ranker): {r['degraded_answers']}. "
             f"Recovery probes after the run: {r['probes']}.", "",
             "| crash | process | at s | served again after s | replacement running after s |", "|---|---|---|---|---|"]
    for f in r["faults"]:
        lines.append(f"| {f['kind']} `{f['target']}` ({f['how']}) | pid {f['pid']} | {f['at_s']} | {f['recovered_s']} "
                     f"| {f['replaced_s']} |")
    lines += ["", f"Feedback events acknowledged: **{ev['acked']}** ({ev['accepted']} accepted + {ev['duplicates']} "
              f"internal retries); stored: **{ev['stored']}**; outcome unknown: {ev['outcome_unknown']}; "
              f"equal: **{ev['match']}**.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    configure()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=180, help="seconds of load (default 180)")
    ap.add_argument("--rate", type=float, default=20, help="searches per second (default 20)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--dataset", default="builtin:music-demo", help="the dataset the service was built from")
    ap.add_argument("--retriever", default="dense", help="strategy whose replica is crashed (default dense)")
    ap.add_argument("--feedback-shard", type=int, default=0, help="feedback actor crashed (default 0)")
    ap.add_argument("--kill-with", choices=["signal", "ray"], default="signal")
    ap.add_argument("--recovery-timeout", type=float, default=90, help="max seconds of probing after the run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("load_faults")), help="output path without suffix")
    args = ap.parse_args(argv)
    if args.duration < 10 or not 0 < args.rate <= 500:
        ap.error("need --duration >= 10 and 0 < --rate <= 500")
    import ray

    ray.init(address="auto", namespace="ltrr", logging_level="ERROR")
    try:
        run = LoadRun(f"http://127.0.0.1:{args.port}", args.dataset, args.rate, args.duration, args.retriever,
                      args.kill_with, args.feedback_shard, args.seed)
        result = asyncio.run(run.run(args.recovery_timeout))
    finally:
        ray.shutdown()
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result, args))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
