"""The PPO bandit end to end on synthetic logs (train with RLlib, load only the RLModule, serve),
and the exactness of the propensities it logs. No Serve, no indexes.

(a) Three context types, one-hot (+ noise) in the features; in each type the acted item is
found only by one strategy (lexical, dense or memory) at a small rank, and calling a
strategy is expensive. So the best plan differs by type: a trained policy must beat both
uniformly random plans and the best single fixed plan (computed exactly from the env's
reward tables). (b) Real, freshly built RLlib modules with hand-set biases: propensities
over all plans sum to 1 (with a strategy down, with and without epsilon), match the served
distribution, and match the empirical frequencies of sampled plans (chi-square). (c) A user
strategy in the action space, trained through the retrain job's own function from logged
requests: the promoted bandit calls it exactly where it pays."""
from __future__ import annotations

import itertools
import json
import math
import time
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import ray
import torch

from core.paths import StatePaths
from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from learning.retrain import by_request, retrain_bandit
from retrievers import STRATEGIES
from rl.bandit import META_FILE, MODULE_DIR, BanditPolicy, quiet_ray_logs
from rl.cost import CostModel
from rl.env import LoggedContext, ReplayBanditEnv
from rl.features import ContextFeaturizer
from rl.policy import LEVELS, ActionSpace, PolicyContext
from rl.reward import RewardConfig, gain_table, returned_counts
from rl.serving import PolicyArgs
from rl.train import BanditArtifact, PPOConfig, train_bandit
from tests.helpers.catalogue import tiny_dataset

STRATS = list(STRATEGIES)
TYPES = ("lexical", "dense", "memory")  # type k: only TYPES[k] finds the acted item
CFG = RewardConfig(price_per_10ms=0.1)
# calling a strategy costs 25 ms (0.25 reward) plus 0.4 ms per 10 candidates; the ranker is free
COST = CostModel(strategy_ms={s: {10: 25.0, 100: 25.0} for s in STRATS}, ranker_base_ms=0.0,
                 ranker_per_candidate_ms=0.04, call_overhead_ms=0.0)
SPACE = ActionSpace(STRATS)
PPO = PPOConfig(iterations=40, train_batch_size=1000, minibatch_size=250, num_epochs=6, seed=0,
                warm_start_steps=0)  # PPO alone must learn; the warm start has its own test


def cand(item: str, **ranks: int) -> Candidate:
    return Candidate(item_id=item, hits={s: Hit(r, 1.0 / r) for s, r in ranks.items()})


def synthetic(rng: np.random.Generator, n: int) -> list[LoggedContext]:
    out = []
    for i in range(n):
        k = int(rng.integers(len(TYPES)))
        cands = [cand("hit", **{TYPES[k]: int(rng.integers(1, 9))})]  # rank 1..8: budget 10 suffices
        cands += [cand(f"d{j}", **{STRATS[int(rng.integers(len(STRATS)))]: int(rng.integers(1, 101))})
                  for j in range(20)]  # distractors, never acted on
        feats = np.concatenate([np.eye(len(TYPES))[k] + rng.normal(0, 0.3, len(TYPES)), rng.normal(0, 1, 2)])
        up = tuple(s for s in STRATS if not (s == "explore" and rng.random() < 0.2))  # explore sometimes down
        out.append(LoggedContext(features=feats, gains=gain_table(cands, {"hit": 3.0}, SPACE, CFG),
                                 returned=returned_counts(cands), available=up, request_id=f"r{i}", full=True))
        out[-1].hit_strategy = TYPES[k]
    return out


@pytest.fixture(scope="module")
def ray_session():
    """Ray started by the caller: train_bandit must reuse it and leave it running."""
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory) -> tuple[BanditArtifact, float]:
    contexts = synthetic(np.random.default_rng(0), 480)
    out = tmp_path_factory.mktemp("bandits")
    t0 = time.perf_counter()
    art = train_bandit(contexts, STRATS, out, "synthetic-v1", reward=CFG, ppo=PPO,
                       feature_names=["t_lexical", "t_dense", "t_memory", "noise0", "noise1"], cost=COST)
    return art, time.perf_counter() - t0


@pytest.fixture(scope="module")
def held_out() -> list[LoggedContext]:
    return synthetic(np.random.default_rng(12345), 300)


def level_index(budgets: dict[str, int]) -> tuple[int, ...]:
    return tuple(LEVELS.index(budgets[s]) for s in STRATS)


def test_artifact_layout_and_meta(trained, monkeypatch):
    art, seconds = trained
    print(f"\nPPO training wall time (480 contexts, {PPO.iterations} iterations): {seconds:.1f} s; "
          f"phases {art.meta['seconds']}")
    assert ray.is_initialized()  # the caller's Ray was reused, not shut down
    assert art.path.name == "synthetic-v1" and (art.path / MODULE_DIR).is_dir()
    meta = json.loads((art.path / META_FILE).read_text())
    assert meta == art.meta
    assert meta["version"] == "synthetic-v1" and meta["strategies"] == STRATS and meta["levels"] == list(LEVELS)
    assert meta["obs_dim"] == 5 and meta["feature_names"][0] == "t_lexical" and meta["created"] > 1.6e9
    assert meta["ppo"] == PPO.model_dump() and len(meta["reward_curve"]) == PPO.iterations
    # the guard (`rl.guard`) let the routing through: out of sample it beats the best static plan
    guard = meta["guard"]
    assert guard["ran"] and guard["validation_contexts"] == 144 and guard["static"] == {}, guard
    assert guard["regimes"]["0"]["contextual"] and guard["regimes"]["0"]["advantage"] > 0.3, guard
    curve = meta["reward_curve"]
    assert curve[-1] > curve[0] + 1.0, curve  # learning happened
    with pytest.raises(FileExistsError):
        train_bandit(synthetic(np.random.default_rng(1), 5), STRATS, art.path.parent, "synthetic-v1", reward=CFG,
                     cost=COST)
    # a relative path (`ltrr bench` with its default state dir "state"): RLlib's loader takes
    # paths as URIs and rejected a relative one ("URI has empty scheme")
    monkeypatch.chdir(art.path.parent)
    assert BanditPolicy.load(Path(art.path.name), epsilon=0.0).meta["version"] == "synthetic-v1"


def test_trained_policy_beats_uniform_and_best_fixed_plan(trained, held_out):
    art, _ = trained
    pol = BanditPolicy.load(art.path, epsilon=0.05, seed=1)
    assert pol.version == "synthetic-v1"
    env = ReplayBanditEnv(held_out, STRATS, LEVELS, CFG, seed=0, cost=COST)
    tables = np.stack([env.table(c) for c in held_out])
    empty = (0,) * len(STRATS)
    # uniform over each context's non-empty reachable plans (what ActionSpace.sample_uniform draws)
    uniform = []
    for c, t in zip(held_out, tables):
        reach = np.zeros(t.shape, bool)
        reach[tuple(slice(None) if s in c.available else slice(0, 1) for s in STRATS)] = True
        reach[empty] = False
        uniform.append(t[reach].mean())
    uniform_value = float(np.mean(uniform))
    total = tables.sum(axis=0)
    total[empty] = -np.inf
    best_fixed = float(total.max()) / len(held_out)  # chosen on the held-out set itself: a strong baseline
    # the policy, exactly (served distribution incl. epsilon) and by sampling through the env
    expected = float(np.mean([(pol.distribution(c.features, c.available) * t).sum()
                              for c, t in zip(held_out, tables)]))
    greedy = float(np.mean([t[level_index(pol.greedy(c.features, c.available))] for c, t in zip(held_out, tables)]))
    sampled = []
    for i, c in enumerate(held_out):
        plan = pol.plan(PolicyContext(features=c.features, available=c.available))
        assert plan.policy_version == "synthetic-v1" and any(plan.budgets.values())
        assert all(plan.budgets[s] == 0 for s in STRATS if s not in c.available)
        env.reset(options={"index": i})
        sampled.append(env.step(np.array(level_index(plan.budgets)))[1])
    sampled_value = float(np.mean(sampled))
    oracle = env.oracle_value(include_empty=False)
    print(f"\nheld-out mean reward: policy {expected:.3f} (sampled {sampled_value:.3f}, greedy {greedy:.3f}), "
          f"uniform {uniform_value:.3f}, best fixed plan {best_fixed:.3f}, oracle {oracle:.3f}")
    assert expected > uniform_value + 1.0
    assert expected > best_fixed + 0.1
    assert sampled_value > best_fixed + 0.05
    assert greedy > best_fixed + 0.3 and greedy <= oracle + 1e-9
    # the greedy plan calls the strategy that finds the acted item, within budget, for (nearly) every context
    right = [pol.greedy(c.features, c.available)[c.hit_strategy] >= 10 for c in held_out]
    assert np.mean(right) > 0.9


def test_full_information_warm_start_nears_the_oracle(ray_session, tmp_path, held_out):
    """300 warm-start steps on the shadow tables, then one PPO iteration: the greedy plan the
    policy serves is close to the per-context oracle on held-out contexts (PPO alone, above,
    is not)."""
    art = train_bandit(synthetic(np.random.default_rng(0), 480), STRATS, tmp_path, "warm-v1", reward=CFG,
                       ppo=PPOConfig(iterations=1, warm_start_steps=300, seed=0, guard_share=0.0), cost=COST)
    warm = art.meta["warm_start_curve"]
    assert len(warm) == 7 and warm[-1] > warm[0] + 1.0, warm  # one value every 50 steps, and the last
    pol = BanditPolicy.load(art.path, epsilon=0.0, seed=1)
    env = ReplayBanditEnv(held_out, STRATS, LEVELS, CFG, seed=0, cost=COST)
    expected = float(np.mean([(pol.distribution(c.features, c.available) * env.table(c)).sum() for c in held_out]))
    greedy = float(np.mean([env.table(c)[level_index(pol.greedy(c.features, c.available))] for c in held_out]))
    oracle = env.oracle_value(include_empty=False)
    print(f"\nwarm start: held-out greedy reward {greedy:.3f} (sampled from the policy: {expected:.3f}), "
          f"oracle {oracle:.3f}")
    assert oracle - 0.1 < greedy <= oracle + 1e-9


def test_the_guard_pins_a_routing_that_does_not_pay_to_the_best_static_plan(ray_session, tmp_path):
    """The features say nothing about which strategy finds the acted item (they are shuffled
    between contexts), so no routing can beat the best static plan: the guard must pin every
    context to it, and the served distribution must stay exact (epsilon's near plans around it,
    summing to 1)."""
    contexts = synthetic(np.random.default_rng(0), 300)
    perm = np.random.default_rng(1).permutation(len(contexts))
    feats = [contexts[i].features for i in perm]
    for c, f in zip(contexts, feats):
        c.features = f
    art = train_bandit(contexts, STRATS, tmp_path, "pinned-v1", reward=CFG, cost=COST,
                       ppo=PPOConfig(iterations=1, warm_start_steps=100, seed=0, guard_share=0.3))
    guard = art.meta["guard"]
    assert guard["ran"] and not guard["regimes"]["0"]["contextual"] and guard["probe_contexts"] == 210, guard
    env = ReplayBanditEnv(contexts[:210], STRATS, LEVELS, CFG, cost=COST)
    best = env.best_plan(LoggedContext(np.zeros(5), np.sum([c.gains for c in contexts[:210]], axis=0),
                                       contexts[0].returned, tuple(STRATS)), include_empty=False)[0]
    assert guard["static"] == {"0": best}, (guard, best)
    assert guard["served_cost_ms"] == pytest.approx(np.mean([COST.plan_ms(
        {s: b if s in c.available else 0 for s, b in best.items()}, returned=c.returned) for c in contexts]), abs=1e-3)
    assert art.meta["version"] == "pinned-v1" and not list(tmp_path.glob(".pinned-v1.probe-*"))
    pol = BanditPolicy.load(art.path, epsilon=0.1, seed=0)
    for c in contexts[:20]:
        assert pol.greedy(c.features, STRATS) == best
        dist = pol.distribution(c.features, STRATS)
        assert abs(dist.sum() - 1.0) < 1e-9 and dist[level_index(best)] > 0.9 - 1e-6
    served = Counter(tuple(sorted(pol.plan(PolicyContext(features=c.features, available=tuple(STRATS))).budgets
                                  .items())) for c in contexts)
    assert served.most_common(1)[0][0] == tuple(sorted(best.items())) and served.most_common(1)[0][1] > 240


# deeper budgets cost more (10 ms per 10 candidates, roughly), the ranker is free
DEEP_COST = CostModel(strategy_ms={s: {10: 10.0, 25: 20.0, 50: 40.0, 100: 80.0} for s in STRATS},
                      ranker_base_ms=0.0, ranker_per_candidate_ms=0.0, call_overhead_ms=0.0)


def deep(rng: np.random.Generator, n: int) -> list[LoggedContext]:
    """As `synthetic`, but the acted item sits anywhere in ranks 1..100 of its strategy's list,
    which the features do not tell: a deeper budget finds it more often, for more ms."""
    out = []
    for i in range(n):
        k = int(rng.integers(len(TYPES)))
        cands = [cand("hit", **{TYPES[k]: int(rng.integers(1, 101))})]
        feats = np.concatenate([np.eye(len(TYPES))[k] + rng.normal(0, 0.3, len(TYPES)), rng.normal(0, 1, 2)])
        out.append(LoggedContext(features=feats, gains=gain_table(cands, {"hit": 3.0}, SPACE, CFG),
                                 returned=returned_counts(cands), available=tuple(STRATS), request_id=f"r{i}",
                                 full=True))
    return out


def test_a_mean_budget_is_met_without_a_hand_tuned_price(ray_session, tmp_path):
    """Compute nearly free (price 0.001) makes the deepest budget (80 ms) on the right strategy
    pay; asked for a mean of 40 ms per request instead, the trainer raises the price until the
    greedy plans spend about that on held-out contexts (plans are discrete: within one level,
    20 ms, of it), with no hand-tuned price."""
    budget = RewardConfig(price_per_10ms=0.001, budget_ms=40.0)
    art = train_bandit(deep(np.random.default_rng(0), 480), STRATS, tmp_path, "budget-v1", reward=budget,
                       ppo=PPOConfig(iterations=1, warm_start_steps=400, seed=0, guard_share=0.0), cost=DEEP_COST)
    probes = [t for t in art.meta["price_search"] if "step" not in t and "plans_in_use" not in t]
    assert art.meta["budget_ms"] == 40.0 and art.meta["price_per_10ms"] > budget.price_per_10ms and probes
    pol = BanditPolicy.load(art.path, epsilon=0.0)
    held = deep(np.random.default_rng(12345), 300)
    spent = np.mean([DEEP_COST.plan_ms(pol.greedy(c.features, c.available)) for c in held])
    free = np.mean([DEEP_COST.plan_ms({TYPES[int(np.argmax(c.features[:3]))]: 100}) for c in held])
    print(f"\nbudget 40 ms: price found {art.meta['price_per_10ms']:.4f}, held-out greedy cost "
          f"{spent:.1f} ms (the unconstrained plans: {free:.1f} ms)")
    assert 20.0 <= spent <= 40.0 + 20.0


# ---- (c) a user strategy in the action space, trained by the retrain job's own function -----------------

CUSTOM = ["lexical", "popularity", "http"]  # "http": a custom_strategies entry (retrievers/http_search.py)
MS = {"lexical": 30.0, "popularity": 10.0, "http": 80.0}  # measured call latency: a remote HTTP service is slow


def part_number_logs(rng: np.random.Generator, n: int, t0: float = 1.7e9) -> tuple[list[RequestRecord],
                                                                                   list[EventRecord]]:
    """Logged shadow requests (every strategy fetched at the top budget, so every plan's reward is
    known) served by the fixed plan, with the real context features of their query text on the
    tiny catalogue. Half are part numbers ("SKU 4471-0923", "978-0-14-303943-3"): only the
    external http search finds the item the user plays, at rank 1..3. The others are titles,
    artists, genres and moods, whose played item only lexical finds. A call costs its `MS`."""
    ds = tiny_dataset()
    featurizer = ContextFeaturizer.from_catalog(ds.items, ds.schema)
    words = [it.fields[f] for it in ds.items for f in ("title", "artist")] + \
        [f"{it.fields['artist']} {it.fields['title']}" for it in ds.items] + \
        [f"{it.fields['mood']} {it.fields['genre']}" for it in ds.items]
    requests, events = [], []
    for t in range(n):
        digits = t % 2 == 0
        if digits:
            a, b = (int(v) for v in rng.integers(1000, 99999, size=2))
            query = str(rng.choice([f"SKU {a}-{b}", f"978-{a}-{b}", f"part {a}", f"{a} {b}"]))
        else:
            query = str(rng.choice(words))
        payer = "http" if digits else "lexical"
        hit_rank = int(rng.integers(1, 4))
        cands = [Candidate(f"hit{t}", {payer: Hit(hit_rank, 1.0)})]
        for s in CUSTOM:  # 30 distractors per strategy, at the ranks the hit leaves free
            ranks = [r for r in range(1, 32) if not (s == payer and r == hit_rank)][:30]
            cands += [Candidate(f"{s}{t}-{r}", {s: Hit(r, 1.0 / r)}) for r in ranks]
        features = featurizer.featurize(query, None, t0 + 600 * t)
        requests.append(RequestRecord(
            request_id=f"r{t}", ts=t0 + 600 * t, query=query, features=[float(v) for v in features],
            plan=PlanRecord(budgets={"lexical": 50, "popularity": 10, "http": 25}, propensity=0.1,
                            policy_version="fixed-v1", shadow=True),
            candidates=cands, fetched={s: 100 for s in CUSTOM}, rank_ms=1.0, shown=[f"hit{t}"],
            latency_ms={s: float(rng.normal(MS[s], 1)) for s in CUSTOM}, ranker_version="fallback",
            shadow_latency_ms={s: float(rng.normal(MS[s], 1)) for s in CUSTOM}))
        events.append(EventRecord(event_id=f"e{t}", request_id=f"r{t}", item_id=f"hit{t}", type="play",
                                  position=1, ts=t0 + 600 * t + 5))
    return requests, events


class MemoryPromoter:
    def __init__(self) -> None:
        self.serving = {"bandit": "fixed", "ranker": "fallback"}

    def current(self, kind: str) -> str:
        return self.serving[kind]

    def promote(self, kind: str, version: str) -> None:
        self.serving[kind] = version


def test_the_retrained_bandit_calls_the_user_strategy_where_it_pays(ray_session, tmp_path):
    """A custom strategy ("http") in the action space of the retrain job's function
    (`learning.retrain.retrain_bandit`, what POST /admin/retrain runs): trained on logs where it
    alone finds what part-number queries want, the promoted bandit's greedy plan calls it for
    those queries and leaves it out for word queries, where lexical pays and it only costs."""
    requests, events = part_number_logs(np.random.default_rng(0), 240)
    args = PolicyArgs(budgets={"lexical": 50, "popularity": 10, "http": 25},
                      reward=RewardConfig(price_per_10ms=0.1))  # a useless http call (81 ms) costs 0.81
    promoter, paths = MemoryPromoter(), StatePaths(tmp_path)
    t0 = time.perf_counter()
    record = retrain_bandit(paths, args, CUSTOM, requests, by_request(events), 0.02, promoter,
                            ppo=PPOConfig(iterations=1, warm_start_steps=300, seed=0), version="custom-v1")
    seconds = time.perf_counter() - t0
    assert record["promoted"] and promoter.current("bandit") == "custom-v1", record["ope"]
    pol = BanditPolicy.load(paths.bandit_models / "custom-v1", epsilon=0.0)
    assert list(pol.strategies) == CUSTOM
    fresh, _ = part_number_logs(np.random.default_rng(1), 100)
    # (is it a part number: did http find the played item, the log's first candidate; its greedy plan)
    greedy = [("http" in r.candidates[0].hits, pol.greedy(np.asarray(r.features, np.float32), CUSTOM))
              for r in fresh]
    print(f"\nretrain_bandit with a custom strategy: {seconds:.1f} s; greedy plans "
          f"{Counter(str(sorted((s, b) for s, b in g.items() if b)) for _, g in greedy)}")
    assert all(g["http"] >= 10 for digits, g in greedy if digits)  # part numbers: the user strategy is called
    assert all(g["http"] == 0 and g["lexical"] >= 10 for digits, g in greedy if not digits)  # words: it is not
    assert all(g["popularity"] == 0 for _, g in greedy)  # never pays here


# ---- (b) exact propensities, on real RLlib modules with hand-set output biases -------------------------

PAIR = ["lexical", "dense"]


def fresh_policy(path: Path, bias: list[float], epsilon: float, weight_scale: float = 3.0) -> BanditPolicy:
    """A freshly built PPO RLModule for 2 strategies x LEVELS, saved and loaded like an artifact."""
    from ray.rllib.algorithms.ppo import PPOConfig as RLlibPPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    spec = RLlibPPOConfig().get_default_rl_module_spec()
    spec.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    spec.action_space = gym.spaces.MultiDiscrete([len(LEVELS)] * len(PAIR))
    spec.model_config = DefaultModelConfig(fcnet_hiddens=[8])
    torch.manual_seed(0)
    with quiet_ray_logs():
        module = spec.build()
    last = [m for m in module.pi.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(weight_scale)  # features matter
        last.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    module.save_to_path(str(path / MODULE_DIR))
    (path / META_FILE).write_text(json.dumps({"version": path.name, "strategies": PAIR, "levels": list(LEVELS),
                                              "obs_dim": 3, "feature_names": None}))
    return BanditPolicy.load(path, epsilon=epsilon, seed=7)


SKEWED = [2.5, 0.5, -0.5, 0.0, 1.0] + [2.0, -1.0, 0.5, 0.0, -0.5]  # P(empty) large: conditioning matters
ALL_EMPTY = [1000.0, 0.0, 0.0, 0.0, 0.0] * 2  # the module wants the empty plan, always


def all_plans() -> list[dict[str, int]]:
    return [dict(zip(PAIR, b)) for b in itertools.product(LEVELS, repeat=len(PAIR))]


def chi2_limit(df: int, z: float = 3.29) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.29: one-sided 99.95%)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize("epsilon", [0.0, 0.1])
@pytest.mark.parametrize("available", [("lexical", "dense"), ("dense",)])
def test_propensities_are_exact(tmp_path, epsilon, available):
    pol = fresh_policy(tmp_path / "skewed", SKEWED, epsilon)
    x = np.array([0.3, -0.8, 0.5], dtype=np.float32)
    probs = pol.probs(x)
    p_empty = float(np.prod([probs[k, 0] for k, s in enumerate(PAIR) if s in available]))
    assert probs.shape == (2, len(LEVELS)) and np.allclose(probs.sum(axis=1), 1.0)
    assert 0.3 < p_empty < 0.95  # the empty plan is likely: dividing by 1 - P(empty) is essential
    plans = all_plans()
    p = np.array([pol.propensity(b, x, available) for b in plans])
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    for b, pb in zip(plans, p):
        reachable = any(b.values()) and all(b[s] == 0 for s in PAIR if s not in available)
        assert (pb > 0) == reachable, (b, pb)
        if reachable:  # the formula, by hand
            mod = np.prod([probs[k, LEVELS.index(b[s])] for k, s in enumerate(PAIR) if s in available])
            near = pol.space.near(pol.greedy(x, available), available)  # one strategy one level from greedy
            near_p = 1 / len(near) if b in near else 0.0
            assert pb == pytest.approx((1 - epsilon) * mod / (1 - p_empty) + epsilon * near_p, rel=1e-9)
    dist = pol.distribution(x, available)
    assert dist.ravel() == pytest.approx(p, abs=1e-15) and dist.sum() == pytest.approx(1.0, abs=1e-12)
    batched = pol.propensities(plans, np.repeat(x[None], len(plans), axis=0), [available] * len(plans))
    assert batched == pytest.approx(p, rel=1e-6)
    # empirical frequencies of served plans match the logged propensities
    n_draws = 6000
    ctx = PolicyContext(features=x, available=available)
    counts: Counter = Counter()
    for _ in range(n_draws):
        plan = pol.plan(ctx)
        key = tuple(plan.budgets[s] for s in PAIR)
        assert plan.propensity == pytest.approx(p[plans.index(dict(zip(PAIR, key)))], rel=1e-6)
        counts[key] += 1
    support = [(tuple(b[s] for s in PAIR), pb) for b, pb in zip(plans, p) if pb > 0]
    assert set(counts) <= {k for k, _ in support}
    # chi-square goodness of fit; plans expected fewer than 5 times are pooled into one cell
    cells = [(counts[k], n_draws * pb) for k, pb in support if n_draws * pb >= 5]
    rare = [(counts[k], n_draws * pb) for k, pb in support if n_draws * pb < 5]
    if rare:
        cells.append((sum(c for c, _ in rare), sum(e for _, e in rare)))
    stat = sum((c - e) ** 2 / e for c, e in cells)
    assert stat < chi2_limit(len(cells) - 1), (stat, len(cells))


def test_all_mass_on_empty_falls_back_to_uniform(tmp_path):
    pol = fresh_policy(tmp_path / "empty", ALL_EMPTY, epsilon=0.0, weight_scale=1.0)
    x = np.array([1.0, 0.0, -1.0], dtype=np.float32)
    assert (pol.probs(x)[:, 0] == 1.0).all()
    for available, n in ((("lexical", "dense"), 24), (("lexical",), 4)):
        p = np.array([pol.propensity(b, x, available) for b in all_plans()])
        assert sorted(set(np.round(p, 15))) == [0.0, round(1 / n, 15)] and p.sum() == pytest.approx(1.0)
        ctx = PolicyContext(features=x, available=available)
        draws = [pol.plan(ctx) for _ in range(20 * n)]
        assert all(d.propensity == pytest.approx(1 / n) and any(d.budgets.values()) for d in draws)
        assert len({tuple(d.budgets.values()) for d in draws}) > n // 2
        greedy = pol.greedy(x, available)
        assert any(greedy.values()) and all(greedy[s] == 0 for s in PAIR if s not in available)


def test_bad_inputs_and_nothing_available(tmp_path):
    pol = fresh_policy(tmp_path / "skewed", SKEWED, epsilon=0.05)
    with pytest.raises(ValueError, match=r"expects \(3,\)"):
        pol.plan(PolicyContext(features=np.zeros(4), available=PAIR))
    with pytest.raises(ValueError, match=r"expects \(N, 3\)"):
        pol.propensities([{"lexical": 10}], np.zeros((1, 2)), [PAIR])
    with pytest.raises(ValueError, match="non-finite"):
        pol.probs(np.array([0.0, np.nan, 0.0]))
    x = np.zeros(3)
    plan = pol.plan(PolicyContext(features=x, available=()))
    assert plan.budgets == {"lexical": 0, "dense": 0} and plan.propensity == 1.0
    # plans the policy can never serve have probability 0
    assert pol.propensity({"lexical": 0, "dense": 0}, x, PAIR) == 0.0
    assert pol.propensity({"lexical": 10, "dense": 0, "memory": 10}, x, PAIR) == 0.0
    assert pol.propensity({"lexical": 7}, x, PAIR) == 0.0
    assert pol.propensity({"dense": 10}, x, ["lexical"]) == 0.0
    assert pol.prob({"dense": 10}, PolicyContext(features=x, available=PAIR)) == pol.propensity({"dense": 10}, x, PAIR)
