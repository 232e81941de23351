"""What a retrieval plan costs, in milliseconds of real compute, measured.

A plan's cost is the compute it spends, not an arbitrary price per candidate:

    cost_ms(plan) = sum over called strategies s of (ms_s(b_s) + call_overhead_ms)
                  + ranker_base_ms + ranker_per_candidate_ms * n        (if anything is called)

`ms_s(b)` is strategy s's measured latency at budget b (dense includes encoding the
query), linearly interpolated between measured budgets; `call_overhead_ms` is the price
of one more remote call (serialisation, a hop, a replica slot); the ranker's cost grows
with the number of candidates it scores, n. For training tables, where the union's size
under every plan is not computed, n is the sum over called strategies of the candidates
each returns (min(b_s, returned_s)): an upper bound of the union, exact without overlap.

Where the figures come from: `fit` takes timed samples (the bench times every strategy
at every level on real queries); `from_records` reads the service's own request log
(`RequestRecord.latency_ms` per strategy and budget, `rank_ms` against the union size),
so the retraining job prices plans by what they cost in production. `scaled` models a
strategy slowing down (a drift scenario).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.records import RequestRecord
from rl.policy import ActionSpace

#: Used for a strategy nobody has measured yet (ms at any budget): cheap enough to be tried.
DEFAULT_STRATEGY_MS = 2.0


class CostModel(BaseModel):
    """Measured compute per strategy and budget, and the ranker's cost per candidate."""

    model_config = ConfigDict(extra="forbid")
    strategy_ms: dict[str, dict[int, float]] = Field(default_factory=dict, description="strategy -> budget -> "
                                                     "median measured call latency (ms)")
    ranker_base_ms: float = Field(0.5, ge=0, description="the ranker's fixed cost per request (ms)")
    ranker_per_candidate_ms: float = Field(0.01, ge=0, description="the ranker's cost per scored candidate (ms)")
    call_overhead_ms: float = Field(1.0, ge=0, description="added per called strategy: the remote call itself")

    def strategy_cost(self, strategy: str, budget: int) -> float:
        """ms of calling `strategy` at `budget` (0 when not called), overhead included."""
        if budget <= 0:
            return 0.0
        pts = sorted(self.strategy_ms.get(strategy, {}).items())
        if not pts:
            return DEFAULT_STRATEGY_MS + self.call_overhead_ms
        xs, ys = zip(*pts)
        return float(np.interp(budget, xs, ys)) + self.call_overhead_ms

    def plan_ms(self, budgets: Mapping[str, int], n_candidates: int | None = None,
                returned: Mapping[str, int] | None = None) -> float:
        """cost_ms of one plan; `n_candidates` is the union's size if known, else the bound of the docstring."""
        called = {s: b for s, b in budgets.items() if b > 0}
        if not called:
            return 0.0
        if n_candidates is None:
            n_candidates = sum(min(b, (returned or {}).get(s, b)) for s, b in called.items())
        return (sum(self.strategy_cost(s, b) for s, b in called.items()) + self.ranker_base_ms
                + self.ranker_per_candidate_ms * n_candidates)

    def table(self, space: ActionSpace, returned: Mapping[str, int] | None = None) -> np.ndarray:
        """`plan_ms` of every plan, shape (L,)*n in grid order (additive over strategies)."""
        lv = space.levels
        n, L = len(space.strategies), len(lv)
        out = np.full((L,) * n, self.ranker_base_ms)
        for k, s in enumerate(space.strategies):
            got = (returned or {}).get(s)
            v = np.array([self.strategy_cost(s, b) + self.ranker_per_candidate_ms * min(b, b if got is None else got)
                          for b in lv])
            out = out + v.reshape((1,) * k + (L,) + (1,) * (n - k - 1))
        out[(0,) * n] = 0.0
        return out

    def scaled(self, strategy: str, factor: float) -> CostModel:
        """The same model with one strategy `factor` times slower."""
        ms = {s: ({b: v * factor for b, v in lv.items()} if s == strategy else dict(lv))
              for s, lv in self.strategy_ms.items()}
        return self.model_copy(update={"strategy_ms": ms})

    @classmethod
    def fit(cls, samples: Mapping[str, Iterable[tuple[int, float]]], ranker: Sequence[tuple[int, float]],
            call_overhead_ms: float = 1.0) -> CostModel:
        """Medians per (strategy, budget) of timed calls (made non-decreasing in the budget), and a
        least-squares line through the ranker's (candidates, ms) samples (clipped at 0)."""
        by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for s, rows in samples.items():
            for b, ms in rows:
                if b > 0:
                    by[s][int(b)].append(float(ms))
        strategy_ms = {}
        for s, lv in by.items():  # a deeper budget costs at least what a shallower one does: running maximum
            meds = np.maximum.accumulate([statistics.median(v) for _, v in sorted(lv.items())])
            strategy_ms[s] = {b: round(float(m), 4) for b, m in zip(sorted(lv), meds)}
        base, per = 0.5, 0.01
        if len(ranker) >= 2 and len({n for n, _ in ranker}) >= 2:
            x = np.array([n for n, _ in ranker], dtype=float)
            y = np.array([ms for _, ms in ranker], dtype=float)
            per_fit, base_fit = np.polyfit(x, y, 1)
            per, base = max(float(per_fit), 0.0), max(float(base_fit), 0.0)
        return cls(strategy_ms=strategy_ms, ranker_base_ms=round(base, 4), ranker_per_candidate_ms=round(per, 6),
                   call_overhead_ms=call_overhead_ms)

    @classmethod
    def from_records(cls, records: Iterable[RequestRecord], call_overhead_ms: float = 1.0) -> CostModel:
        """Fit from the service's request log: each served call's latency at the depth it was made
        at (its budget, or the lookahead's depth; shadow calls at the top budget), and the
        ranker's latency against the union it ranked."""
        samples: dict[str, list[tuple[int, float]]] = defaultdict(list)
        ranker: list[tuple[int, float]] = []
        for r in records:
            depth = r.depth  # the depth each call was made at (a lookahead fetch goes deeper than the plan)
            for s, ms in r.latency_ms.items():
                samples[s].append((depth.get(s, 0), ms))
            for s, ms in r.shadow_latency_ms.items():
                samples[s].append((r.fetched.get(s, 0), ms))
            if r.rank_ms is not None:
                ranker.append((len(r.served()), r.rank_ms))
        return cls.fit(samples, ranker, call_overhead_ms)
