"""The bench's simulated users: one query stream, what they act on, and every plan's reward.

Simulated users send traffic-split queries drawn with Zipf repeats. For request t the
user's actions come from the click simulator on the ranker's order of the full fan-out
(top 10 shown; clicks and plays by relevance and position): what the user wants. The
request's reward table (`rl.reward.reward_table`) scores every plan on those actions,
so every system (ltrr, static plans, the oracle, `benchmarks/headroom.py`'s bounds) is
judged on the same requests.

The memory strategy learns from every feedback event of the stream (it is the users'
behaviour, not a system's choice), so repeated queries become cheap to answer from
memory. `SimulatedTraffic` applies a request's events to the memory only after the
consumer has handled the request, so a request never sees its own clicks.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from core.events import EVENT_WEIGHTS
from core.records import Candidate
from ltrr.bench.workload import TOP, Workload, fan_out, median_latency, ranked, with_memory
from ltrr.clicks import ClickEvent, ClickModel
from retrievers import STRATEGIES, Query
from rl.policy import ActionSpace
from rl.reward import RewardConfig, plan_grid, reward_table

T0 = 1_700_000_000.0  # the stream's first timestamp; requests are 3 s apart


@dataclass
class Request:
    """One simulated request and everything any system needs to be scored on it."""

    t: int
    qid: str
    text: str
    user: str
    ts: float
    events: list[ClickEvent]
    acted: dict[str, float]  # item -> largest event weight
    candidates: list[Candidate]  # the full fan-out, with memory's current list
    table: np.ndarray  # the reward of every plan, in `ActionSpace.grid()` order
    seen_events: int  # feedback events on this query text before this request

    @property
    def group(self) -> tuple[str, bool]:
        """(query, users acted on it before): all a context can tell about this request's best
        plan, since the simulated users act independently of who they are and when
        (`ltrr.bench.headroom.per_query_cv` groups by it)."""
        return self.text, self.seen_events > 0


class SimulatedTraffic:
    """Iterate over the stream's requests (see the module docstring); seeded by `seed`.

    `requests`, `zipf`, `users` and `seed` mean what `StreamConfig`'s fields of the
    same names mean; `reward` prices every plan in `Request.table`.
    """

    def __init__(self, wl: Workload, requests: int, zipf: float, users: int, seed: int, reward: RewardConfig,
                 progress: bool = True) -> None:
        self.wl, self.reward, self.progress, self.seed = wl, reward, progress, seed
        rng = np.random.default_rng(seed)
        judged = sorted(wl.traffic.judged().items())
        weights = 1.0 / np.arange(1, len(judged) + 1) ** zipf
        order = rng.permutation(len(judged))
        self.picks = [judged[order[i]] for i in rng.choice(len(judged), size=requests, p=weights / weights.sum())]
        self.users = [f"user-{int(u)}" for u in rng.integers(0, users, size=requests)]
        fan_out(wl, [t for _, t in self.picks], progress)
        self.latency = median_latency(wl)
        self.space = ActionSpace(STRATEGIES)
        self.grid = plan_grid(self.space)
        self.memory: Any = wl.index.load("memory")  # a fresh copy: learns from this stream's feedback only
        self._shown: dict[str, list[str]] = {}
        self._seen: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.picks)

    def __iter__(self) -> Iterator[Request]:
        clicker = ClickModel(seed=self.seed)
        for t in tqdm(range(len(self)), desc=f"{self.wl.name}: stream", unit="req", disable=not self.progress):
            qid, text = self.picks[t]
            fo = self.wl.fanout[text]
            if text not in self._shown:  # what the user wants: the ranker's top 10 of the first full fan-out
                self._shown[text] = ranked(self.wl, text, fo.candidates)[0][:10]
            events = clicker.simulate(self._shown[text], self.wl.traffic.qrels.get(qid, {}))
            acted: dict[str, float] = {}
            for e in events:
                acted[e.item_id] = max(acted.get(e.item_id, 0.0), EVENT_WEIGHTS[e.type])
            full = with_memory(fo.candidates, self.memory.retrieve(Query(text=text), TOP))
            table = reward_table(full, acted, self.latency, self.space, self.reward).ravel()
            yield Request(t, qid, text, self.users[t], T0 + 3.0 * t, events, acted, full, table,
                          self._seen.get(text, 0))
            for e in events:  # the memory strategy learns what users act on (as its replicas do in the service)
                self.memory.apply_event(text, e.item_id, e.type)
            self._seen[text] = self._seen.get(text, 0) + len(events)

