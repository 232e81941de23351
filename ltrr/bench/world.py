"""The bench's world: what each strategy can find for a query right now, who the users are,
and how the world changes mid-stream.

Lists come from the workload's one full fan-out per query (`Workload.fanout`), cut to a
plan's budgets (`core.records.within`: a strategy's top b is a prefix of its top 100), and
from the one live memory strategy, which learns from every click of the stream as the
service's memory replicas do. Users are honest: each request's actions are drawn by a
click model on what the system being scored *showed*, with a generator seeded by the
request alone (`clicks`), so every system meets the same user and differs only in what it
showed. Relevance comes from the query's qrels.

Drift scenarios (`Drift`), each starting at request `at`:
- `new_items`: a share of the catalogue is hidden from every list before the change; after
  it, lexical, structured, popularity and explore see the new items at once, dense only
  after a re-encode `reencode_after` requests later, memory only once users click them;
  traffic after the change favours queries whose relevant items are new;
- `latency`: one strategy's compute triples (its cost in the world's cost model);
- `failure`: one strategy fails on every call;
- `query_mix`: traffic moves from one kind of query to another (the dataset's intents, or
  short against long queries).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from core.records import Candidate, within
from ltrr.bench.workload import TOP, Workload, with_memory
from ltrr.clicks import ClickEvent, ClickModel, top_grade
from retrievers import STRATEGIES, Query
from rl.cost import CostModel

SCENARIOS = ("new_items", "latency", "failure", "query_mix")


@dataclass
class Drift:
    """One change of the world at request `at` (see the module docstring)."""

    scenario: str
    at: int
    strategy: str = "dense"  # latency / failure: the strategy that changes
    new_share: float = 0.15  # new_items: share of the catalogue that arrives at `at`
    reencode_after: int = 150  # new_items: requests until dense sees the new items
    factor: float = 3.0  # latency: how much slower


def is_new(item_id: str, share: float) -> bool:
    """Whether an item belongs to the share of the catalogue a new_items drift holds back."""
    return int(hashlib.md5(item_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def query_kind(wl: Workload, qid: str, text: str) -> str:
    """The kind of a query: its intent if the dataset names one, else short (<= 4 words) or long."""
    for qs in (wl.traffic, wl.heldout):
        if qid in qs.intents:
            return qs.intents[qid]
    return "short" if len(text.split()) <= 4 else "long"


class World:
    """Strategy lists and users for one stream, optionally with one drift."""

    def __init__(self, wl: Workload, cost: CostModel, seed: int, drift: Drift | None = None):
        self.wl, self.base_cost, self.seed, self.drift = wl, cost, seed, drift
        self.memory = wl.index.load("memory")  # a fresh copy: learns from this stream's clicks only
        self.clicker = ClickModel(seed=seed, max_grade=top_grade(wl.traffic.qrels, wl.heldout.qrels))
        self.t = 0
        self._full: tuple[int, str, list[Candidate]] | None = None  # (t, text, lists): one request's world

    # -- the state of the world at request t --------------------------------------------------------
    def changed(self) -> bool:
        return self.drift is not None and self.t >= self.drift.at

    @property
    def cost(self) -> CostModel:
        """The cost model in force now (a latency drift slows one strategy down)."""
        d = self.drift
        if d is not None and d.scenario == "latency" and self.changed():
            return self.base_cost.scaled(d.strategy, d.factor)
        return self.base_cost

    def down(self) -> set[str]:
        d = self.drift
        return {d.strategy} if d is not None and d.scenario == "failure" and self.changed() else set()

    def hidden(self, strategy: str, item_id: str) -> bool:
        """New items before they are visible to `strategy`."""
        d = self.drift
        if d is None or d.scenario != "new_items" or not is_new(item_id, d.new_share):
            return False
        if not self.changed():
            return True
        return strategy == "dense" and self.t < d.at + d.reencode_after

    def full(self, text: str) -> list[Candidate]:
        """Every strategy's top-100 list for `text` now: the cached fan-out, memory's live list,
        new items filtered out where the strategy does not see them yet (ranks re-numbered).
        Built once per request: every strategy call and every compared plan of request t reads it."""
        if self._full is not None and self._full[:2] == (self.t, text):
            return self._full[2]
        self._full = (self.t, text, self._build(text))
        return self._full[2]

    def _build(self, text: str) -> list[Candidate]:
        fo = self.wl.fanout[text]
        cands = with_memory(fo.candidates, self.memory.retrieve(Query(text=text), TOP))
        if self.drift is None or self.drift.scenario != "new_items":
            return cands
        out: dict[str, dict] = {}
        for s in STRATEGIES:
            kept = sorted(((c.hits[s].rank, c) for c in cands if s in c.hits and not self.hidden(s, c.item_id)),
                          key=lambda p: p[0])
            for r, (_, c) in enumerate(kept, 1):
                h = c.hits[s]
                out.setdefault(c.item_id, {})[s] = type(h)(r, h.score, h.features)
        return [Candidate(i, h) for i, h in out.items()]

    def lists(self, text: str, budgets: dict[str, int]) -> list[Candidate]:
        """What a plan retrieves now (failed strategies find nothing)."""
        down = self.down()
        return within(self.full(text), {s: (0 if s in down else b) for s, b in budgets.items()})

    # -- users ------------------------------------------------------------------------------------------
    def clicks(self, t: int, shown: list[str], qrels: dict[str, int]) -> list[ClickEvent]:
        """The actions of request t's user on `shown`: the same generator for every system."""
        return self.clicker.simulate(shown, qrels, rng=np.random.default_rng([self.seed, t]))

    def learn(self, text: str, events: list[ClickEvent]) -> None:
        """The memory strategy learns what users acted on (as its replicas do in the service)."""
        for e in events:
            self.memory.apply_event(text, e.item_id, e.type)
        self._full = None  # memory's list changed
