"""Plan rewards recomputed from shadow logs, the vectorised reward table, and the replay env.

Hand-made logs with answers computed by hand; no Ray, no indexes."""
from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from core.events import EVENT_WEIGHTS
from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from retrievers import STRATEGIES
from rl.env import LoggedContext, ReplayBanditEnv
from rl.policy import LEVELS, ActionSpace
from rl.reward import RewardConfig, acted_items, plan_cost, plan_grid, plan_reward, reward_table, union_under_plan

CFG = RewardConfig(candidate_cost=0.05, latency_cost=0.05)
LAT = {"lexical": 4.0, "dense": 10.0}


def cand(item: str, **ranks: int) -> Candidate:
    return Candidate(item_id=item, hits={s: Hit(r, 1.0 / r) for s, r in ranks.items()})


# "a": lexical rank 3, dense rank 30 (played, w=2); "b": dense rank 5 (clicked, w=1); "c": lexical 60 (not acted)
CANDS = [cand("a", lexical=3, dense=30), cand("b", dense=5), cand("c", lexical=60)]
ACTED = {"a": 2.0, "b": 1.0}


def event(item: str, kind: str, n: int = 0) -> EventRecord:
    return EventRecord(event_id=f"e{item}{kind}{n}", request_id="r1", item_id=item, type=kind, position=1, ts=0.0)


def test_acted_items_takes_max_weight_per_item():
    evs = [event("a", "click"), event("a", "play"), event("b", "click"), event("c", "skip"), event("d", "like")]
    assert acted_items(evs, CFG) == {"a": 2.0, "b": 1.0, "c": EVENT_WEIGHTS["skip"], "d": 3.0}
    with pytest.raises(ValueError):
        acted_items([event("a", "click"), event("b", "click").model_copy(update={"request_id": "r2"})], CFG)


def test_union_under_plan():
    assert union_under_plan(CANDS, {"lexical": 10, "dense": 0}) == {"a": 3}
    assert union_under_plan(CANDS, {"lexical": 0, "dense": 25}) == {"b": 5}
    assert union_under_plan(CANDS, {"lexical": 0, "dense": 50}) == {"a": 30, "b": 5}
    assert union_under_plan(CANDS, {"lexical": 100, "dense": 50}) == {"a": 3, "b": 5, "c": 60}
    assert union_under_plan(CANDS, {"lexical": 0, "dense": 0}) == {}


def test_plan_reward_by_hand():
    # lexical=10: a at rank 3 -> 2/log2(4) = 1.0; cost 0.05*10/100 + 0.05*4/100 = 0.007
    assert plan_cost({"lexical": 10, "dense": 0}, LAT, CFG) == pytest.approx(0.007, abs=1e-15)
    assert plan_reward(CANDS, ACTED, {"lexical": 10, "dense": 0}, LAT, CFG) == pytest.approx(0.993, abs=1e-12)
    # dense=25: a excluded (rank 30 > 25), b at rank 5 -> 1/log2(6); cost 0.0125 + 0.005
    assert plan_reward(CANDS, ACTED, {"lexical": 0, "dense": 25}, LAT, CFG) == pytest.approx(
        1 / math.log2(6) - 0.0175, abs=1e-12)
    # with only "a" acted, dense=25 earns nothing: reward is minus the cost
    assert plan_reward(CANDS, {"a": 2.0}, {"lexical": 0, "dense": 25}, LAT, CFG) == pytest.approx(-0.0175, abs=1e-12)
    # dense=50: a at rank 30 -> 2/log2(31), b -> 1/log2(6); cost 0.025 + 0.005
    assert plan_reward(CANDS, ACTED, {"lexical": 0, "dense": 50}, LAT, CFG) == pytest.approx(
        2 / math.log2(31) + 1 / math.log2(6) - 0.03, abs=1e-12)
    # both: a at best rank 3; cost 0.05*(10+50)/100 + 0.05*(4+10)/100 = 0.037
    assert plan_reward(CANDS, ACTED, {"lexical": 10, "dense": 50}, LAT, CFG) == pytest.approx(
        1.0 + 1 / math.log2(6) - 0.037, abs=1e-12)
    assert plan_reward(CANDS, ACTED, {"lexical": 0, "dense": 0}, LAT, CFG) == 0.0
    recip = CFG.model_copy(update={"discount": "reciprocal"})
    assert plan_reward(CANDS, {"a": 2.0}, {"lexical": 10}, LAT, recip) == pytest.approx(2 / 3 - 0.007, abs=1e-12)


def test_reward_table_exact_small():
    space = ActionSpace(["lexical", "dense"])
    t = reward_table(CANDS, ACTED, LAT, space, CFG)
    assert t.shape == (5, 5)
    L = space.levels
    assert t[0, 0] == 0.0
    assert t[L.index(10), 0] == pytest.approx(0.993, abs=1e-12)
    assert t[0, L.index(25)] == pytest.approx(1 / math.log2(6) - 0.0175, abs=1e-12)
    assert t[L.index(10), L.index(50)] == pytest.approx(1.0 + 1 / math.log2(6) - 0.037, abs=1e-12)
    for (i, j), budgets in zip(itertools.product(range(5), repeat=2), plan_grid(space)):
        b = dict(zip(space.strategies, map(int, budgets)))
        assert b == {"lexical": L[i], "dense": L[j]}
        assert t[i, j] == pytest.approx(plan_reward(CANDS, ACTED, b, LAT, CFG), abs=1e-12)


def random_context(rng: np.random.Generator, strategies: list[str], n_items: int = 300, n_acted: int = 20,
                   negative: bool = False) -> tuple[list[Candidate], dict[str, float], dict[str, float]]:
    cands = []
    for k in range(n_items):
        found = [s for s in strategies if rng.random() < 0.35] or [strategies[k % len(strategies)]]
        cands.append(cand(f"i{k}", **{s: int(rng.integers(1, 101)) for s in found}))
    ids = rng.choice(n_items, size=n_acted, replace=False)
    weights = [-1.0, 0.0, 1.0, 2.0, 3.0] if negative else [0.0, 1.0, 2.0, 3.0]
    acted = {f"i{k}": float(rng.choice(weights)) for k in ids}
    acted["not-a-candidate"] = 3.0
    return cands, acted, {s: float(rng.uniform(0.1, 40)) for s in strategies}


@pytest.mark.parametrize("negative", [False, True])
def test_reward_table_matches_plan_reward_six_strategies(negative):
    rng = np.random.default_rng(7)
    strategies = list(STRATEGIES)
    space = ActionSpace(strategies)
    cands, acted, lat = random_context(rng, strategies, negative=negative)
    t = reward_table(cands, acted, lat, space, CFG)  # warm-up
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        t = reward_table(cands, acted, lat, space, CFG)
    ms = (time.perf_counter() - t0) * 1000 / reps
    print(f"\nreward_table: {t.size} plans, 300 candidates, {len(acted)} acted: {ms:.2f} ms per context")
    assert t.shape == (5,) * 6
    grid = plan_grid(space)
    flat = t.ravel()
    picks = set(rng.choice(len(grid), size=400, replace=False).tolist()) | {0, 1, len(grid) - 1, 5 ** 5}
    for k in sorted(picks):
        b = dict(zip(strategies, map(int, grid[k])))
        assert flat[k] == pytest.approx(plan_reward(cands, acted, b, lat, CFG), abs=1e-9), b
    assert flat[0] == 0.0
    assert dict(zip(strategies, map(int, grid[-1]))) == {s: 100 for s in strategies}


def make_env(**kw) -> tuple[ReplayBanditEnv, list[LoggedContext]]:
    ctxs = [LoggedContext(features=np.array([1.0, 0.0, 2.0]), candidates=CANDS, acted=ACTED, latency_ms=LAT,
                          available=("lexical", "dense"), request_id="r0"),
            LoggedContext(features=np.array([0.0, 1.0, 0.0]), candidates=CANDS, acted={"a": 2.0}, latency_ms=LAT,
                          available=("lexical",), request_id="r1")]
    return ReplayBanditEnv(ctxs, ["lexical", "dense"], LEVELS, CFG, seed=3, **kw), ctxs


# Context features are unbounded by design (the Box is -inf..inf); gymnasium warns about that.
@pytest.mark.filterwarnings("ignore:.*A Box observation space (minimum|maximum) value is:UserWarning")
def test_env_passes_check_env():
    env, _ = make_env()
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (3,)
    assert list(env.action_space.nvec) == [5, 5]


def test_env_step_reward_and_masking():
    env, _ = make_env()
    obs, info = env.reset(options={"index": 0})
    assert obs.dtype == np.float32 and obs.tolist() == [1.0, 0.0, 2.0] and info["request_id"] == "r0"
    _, r, terminated, truncated, info = env.step(np.array([1, 3]))  # lexical=10, dense=50
    assert (terminated, truncated) == (True, False)
    assert info["budgets"] == {"lexical": 10, "dense": 50}
    assert r == pytest.approx(1.0 + 1 / math.log2(6) - 0.037, abs=1e-12)
    with pytest.raises(RuntimeError):
        env.step(np.array([1, 3]))  # episode over
    env.reset(options={"index": 1})  # dense unavailable: forced to 0, costs nothing
    _, r, *_, info = env.step(np.array([1, 3]))
    assert info["budgets"] == {"lexical": 10, "dense": 0}
    assert r == pytest.approx(0.993, abs=1e-12)
    env.reset(options={"index": 1})
    _, r, *_, info = env.step(np.array([0, 4]))  # masked to the empty plan: reward exactly 0
    assert info["budgets"] == {"lexical": 0, "dense": 0} and r == 0.0
    with pytest.raises(ValueError):
        env.reset(options={"index": 0})
        env.step(np.array([5, 0]))


def test_env_reset_is_seeded():
    env, _ = make_env()
    a = [env.reset(seed=11)[1]["index"]] + [env.reset()[1]["index"] for _ in range(20)]
    b = [env.reset(seed=11)[1]["index"]] + [env.reset()[1]["index"] for _ in range(20)]
    assert a == b and set(a) == {0, 1}


def brute_force(env: ReplayBanditEnv, ctx: LoggedContext, include_empty: bool = True):
    best, best_r = None, -math.inf
    for idx in itertools.product(range(len(env.levels)), repeat=len(env.strategies)):
        b = env.budgets(idx, ctx)
        if list(b.values()) != [env.levels[i] for i in idx]:
            continue  # not reachable as such (masked)
        if not include_empty and not any(b.values()):
            continue
        r = plan_reward(ctx.candidates, ctx.acted, b, ctx.latency_ms, env.cfg)
        if r > best_r + 1e-12:
            best, best_r = b, r
    return best, best_r


def test_best_plan_equals_brute_force():
    env, ctxs = make_env()
    assert env.best_plan(ctxs[0]) == (pytest.approx({"lexical": 10, "dense": 10}), pytest.approx(
        1.0 + 1 / math.log2(6) - (0.05 * 20 / 100 + 0.05 * 14 / 100), abs=1e-12))
    for c in ctxs:
        plan, r = env.best_plan(c)
        bp, br = brute_force(env, c)
        assert plan == bp and r == pytest.approx(br, abs=1e-12)
    # nothing acted: the empty plan (0) wins unless excluded; then the cheapest non-empty plan
    idle = LoggedContext(features=np.zeros(3), candidates=CANDS, acted={}, latency_ms=LAT, available=("lexical", "dense"))
    assert env.best_plan(idle) == ({"lexical": 0, "dense": 0}, 0.0)
    assert env.best_plan(idle, include_empty=False) == ({"lexical": 10, "dense": 0}, pytest.approx(-0.007, abs=1e-12))
    # four strategies, one down, random logs
    rng = np.random.default_rng(1)
    strategies = ["lexical", "dense", "memory", "structured"]
    for seed in range(3):
        cands, acted, lat = random_context(np.random.default_rng(seed), strategies, n_items=60, n_acted=6)
        ctx = LoggedContext(features=rng.normal(size=2), candidates=cands, acted=acted, latency_ms=lat,
                            available=("lexical", "memory", "structured"))
        env4 = ReplayBanditEnv([ctx], strategies, LEVELS, CFG, seed=0)
        for inc in (True, False):
            plan, r = env4.best_plan(ctx, include_empty=inc)
            bp, br = brute_force(env4, ctx, include_empty=inc)
            assert plan == bp and r == pytest.approx(br, abs=1e-9)
            assert plan["dense"] == 0


def test_env_table_equals_step_for_every_action():
    env, ctxs = make_env()
    for i, c in enumerate(ctxs):
        flat = env.table(c).ravel()
        for k, action in enumerate(env.all_actions()):
            env.reset(options={"index": i})
            assert flat[k] == pytest.approx(env.step(np.array(action))[1], abs=1e-12), (i, action)


def test_fixed_plan_and_oracle_values():
    env, _ = make_env()
    v = env.fixed_plan_value({"lexical": 10, "dense": 50})
    assert v == pytest.approx(((1.0 + 1 / math.log2(6) - 0.037) + 0.993) / 2, abs=1e-12)
    assert env.oracle_value() >= v


def test_logged_context_from_record():
    plan = PlanRecord(budgets={"lexical": 100, "dense": 100}, propensity=1.0, policy_version="p", shadow=True)
    rec = RequestRecord(request_id="r1", ts=0.0, query="q", features=[0.5, 1.0], plan=plan, failed=["dense"],
                        candidates=CANDS, shown=["a"], ranker_version="x")
    ctx = LoggedContext.from_record(rec, [event("a", "play"), event("b", "click")], LAT, CFG)
    assert ctx.available == ("lexical",) and ctx.acted == {"a": 2.0, "b": 1.0}
    assert ctx.features.dtype == np.float32
    with pytest.raises(ValueError):
        LoggedContext.from_record(rec.model_copy(update={"plan": plan.model_copy(update={"shadow": False})}),
                                  [], LAT, CFG)
