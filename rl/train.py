"""Train the retrieval-plan bandit with RLlib PPO on the replay environment; write a versioned artifact.

What: `train_bandit` builds a `ReplayBanditEnv` over logged shadow contexts and trains an
RLlib PPO agent (new API stack) on it with gamma=0, i.e. a contextual bandit: every
episode is one step (observe the context features, choose a budget level per strategy,
receive the plan's counterfactual reward), so the advantage is just r - V(x). RLlib 2.60
ships no bandit algorithms; PPO with gamma=0 is the supported way to learn this policy.

Why this shape: the serving side (`rl.bandit.BanditPolicy`) needs only the policy
network, so the artifact `out_dir/<version>/` holds the trained RLModule alone
(`module/`, written by the learner's `RLModule.save_to_path`, loadable with
`RLModule.from_checkpoint`) plus `meta.json` (version, strategies, levels, obs_dim,
feature names, creation time, the PPO config and the per-iteration mean reward curve),
not a full Algorithm checkpoint (env runner state, optimizer, config pickles).

Warm start (`rl.warm_start`, custom learning steps on the learner's RLModule): before PPO,
the module learns from every logged context's whole table of plan gains: fitted to the
direct method's greedy plans (`rl.plan_search`), then ascending the exact expected reward.
A compute budget instead of a price (`RewardConfig.budget_ms`): the warm start finds the
price at which the greedy plans' mean cost meets it; PPO then fine-tunes at that price,
which the artifact's meta records with the search's trace (`price_search`).

The regime guard (`rl.guard`, `PPOConfig.guard_share`, on by default): a probe trained on the
older contexts must beat each regime's best static plan on the newest ones, out of sample,
before its routing serves that regime; a regime where it does not is pinned to that plan.
Costs: one probe training on 70 % of the contexts, and a second, full training only when
some regime keeps its routing.

Speed: sampling and learning both run in the driver (num_env_runners=0, num_learners=0)
over a synchronous vector of env replicas sharing one cache of reward tables (each
context's table of all plans is computed once, ~1 ms, and kept: L**n float64 per context,
125 KB at 6 strategies x 5 levels), so a step is a table lookup. One torch thread by
default: the MLP is tiny, and two spinning OpenMP threads on a 2-core machine were seen to
slow training down >10x whenever anything else wanted a core.
Ray is initialised locally only if it is not already (an existing `ray.init(address=...)`
connection is reused and left alone); a Ray instance started here is shut down again.
"""
from __future__ import annotations

import gc
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from rl.artifact import META_FILE, MODULE_DIR
from rl.bandit import BanditPolicy, quiet_ray_logs
from rl.cost import CostModel
from rl.env import LoggedContext, ReplayBanditEnv
from rl.features import REGIME_FEATURE
from rl.guard import MIN_CONTEXTS, judge
from rl.policy import LEVELS
from rl.reward import RewardConfig
from rl.warm_start import warm_start

ENV_NAME = "ltrr-replay-bandit"

# Prototype envs of running trainings, by session key: the registered env creator looks its
# env up here, so the (large) contexts never go through RLlib's config copies or Ray's KV store.
_SESSIONS: dict[str, ReplayBanditEnv] = {}


class PPOConfig(BaseModel):
    """PPO settings for the one-step bandit (gamma is fixed at 0)."""

    model_config = ConfigDict(extra="forbid")
    iterations: int = Field(60, ge=1, description="training iterations (sample a batch, then update)")
    lr: float = Field(3e-3, gt=0, description="Adam learning rate")
    entropy_coeff: float = Field(0.0, ge=0, description="entropy bonus weight (keeps some exploration)")
    train_batch_size: int = Field(1000, ge=1, description="one-step episodes (contexts) sampled per iteration")
    minibatch_size: int = Field(250, ge=1, description="SGD minibatch size")
    num_epochs: int = Field(6, ge=1, description="passes over each iteration's batch")
    hidden: list[int] = Field(default_factory=lambda: [64, 64], description="MLP hidden layer sizes")
    num_envs: int = Field(50, ge=1, description="env replicas stepped together (one forward pass per vector step)")
    seed: int = Field(0, description="seed of RLlib (torch, numpy) and of the envs")
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads while training (restored after)")
    warm_start_steps: int = Field(300, ge=0, description="full-information Adam steps before PPO over all logged "
                                  "contexts, half fitting the direct method's plans, half on the exact expected "
                                  "reward (`rl.warm_start`; 0: PPO only)")
    warm_start_lr: float = Field(3e-3, gt=0, description="Adam learning rate of the warm start")
    dual_every: int = Field(20, ge=1, description="budget mode: warm-start ascent steps between price updates")
    dual_rate: float = Field(1.0, gt=0, description="budget mode: step size of the multiplicative price update")
    guard_share: float = Field(0.3, ge=0, lt=1, description="the regime guard (`rl.guard`): this newest share of "
                               "the contexts judges a policy trained on the rest against each regime's best static "
                               "plan; regimes where its routing does not win out of sample are served that plan "
                               "(0: no guard, one training)")


@dataclass(frozen=True)
class BanditArtifact:
    """A trained bandit on disk: `path` = out_dir/version (holds `module/` and `meta.json`)."""

    path: Path
    version: str
    meta: dict[str, Any]


def _make_env(env_config: dict[str, Any]) -> ReplayBanditEnv:
    """RLlib env creator: a replica of the session's prototype env (shared table cache)."""
    proto = _SESSIONS[env_config["session"]]
    return proto.replica(seed=None)


def _algo_config(session: str, ppo: PPOConfig) -> Any:
    from ray.rllib.algorithms.ppo import PPOConfig as RLlibPPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    batch = ppo.train_batch_size
    num_envs = min(ppo.num_envs, batch)
    return (
        RLlibPPOConfig()
        .environment(env=ENV_NAME, env_config={"session": session}, disable_env_checking=True)
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=num_envs,
                     rollout_fragment_length=max(1, batch // num_envs))
        .learners(num_learners=0)
        .training(gamma=0.0, lambda_=1.0, lr=ppo.lr, entropy_coeff=ppo.entropy_coeff,
                  train_batch_size_per_learner=batch, minibatch_size=min(ppo.minibatch_size, batch),
                  num_epochs=ppo.num_epochs)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(ppo.hidden), fcnet_activation="tanh"))
        .reporting(metrics_num_episodes_for_smoothing=batch)
        .debugging(seed=ppo.seed, log_level="ERROR")
    )


def train_bandit(contexts: list[LoggedContext], strategies: list[str], out_dir: Path, version: str,
                 levels: Sequence[int] = LEVELS, reward: RewardConfig | None = None, ppo: PPOConfig | None = None,
                 feature_names: list[str] | None = None, progress: bool = False,
                 cost: CostModel | None = None) -> BanditArtifact:
    """Train PPO (gamma=0) on the replay bandit over `contexts`; write and return `out_dir/version/`.

    Plans are priced by `cost` (measured ms) at `reward.price_per_10ms`, or at the price that
    meets `reward.budget_ms` (see the module docstring). Refuses to overwrite an existing
    artifact directory. `feature_names`, if given, must name every feature dimension.

    With `ppo.guard_share` (`rl.guard`): a probe policy is trained on the older contexts and
    judged per regime on the newest against the regime's best static plan. If its routing wins
    nowhere, the probe is the artifact (every regime pinned to its static plan; the module serves
    only a context where none of that plan's strategies is up); else the policy is trained again
    on all contexts, and the losing regimes are pinned when it serves (`rl.bandit.BanditPolicy`).
    The decision and its tests are in the meta's `guard`, with the mean cost of what the artifact
    serves on all contexts (`served_cost_ms`): the price meets the budget for the module's plans,
    and pinned regimes were chosen to meet it as a static policy, not in this mix."""
    ppo = ppo or PPOConfig()
    if not version or "/" in version or version in (".", ".."):
        raise ValueError(f"invalid version {version!r}")
    n_val = int(len(contexts) * ppo.guard_share)
    plain = ppo.model_copy(update={"guard_share": 0.0})
    if n_val < MIN_CONTEXTS:
        why = None if ppo.guard_share == 0 else f"{len(contexts)} contexts: too few to hold {MIN_CONTEXTS} out"
        return _train_once(contexts, strategies, out_dir, version, levels, reward, plain, feature_names, progress,
                           cost, {"ppo": ppo.model_dump(), "guard": {"ran": False, "why": why}})
    target = Path(out_dir).resolve() / version
    if target.exists():
        raise FileExistsError(f"artifact {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    split = feature_names.index(REGIME_FEATURE) if feature_names and REGIME_FEATURE in feature_names else None
    older, newer = contexts[:-n_val], contexts[-n_val:]
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{version}.probe-") as tmp:
        probe = _train_once(older, strategies, Path(tmp), version, levels, reward, plain, feature_names, progress,
                            cost)
        guard = _judge(probe, older, newer, split, cost)
        guard.update(ran=True, feature=REGIME_FEATURE if split is not None else None, share=ppo.guard_share,
                     probe_contexts=len(older), validation_contexts=len(newer))
        if not any(row["contextual"] for row in guard["regimes"].values()):
            art = _served_cost(BanditArtifact(probe.path, version, {**probe.meta, "ppo": ppo.model_dump(),
                                                                     "guard": guard}), contexts, cost)
            art.path.rename(target)
            return BanditArtifact(path=target, version=version, meta=art.meta)
    art = _train_once(contexts, strategies, out_dir, version, levels, reward, plain, feature_names, progress, cost,
                      {"ppo": ppo.model_dump(), "guard": guard})
    return _served_cost(art, contexts, cost)


def _served_cost(art: BanditArtifact, contexts: list[LoggedContext], cost: CostModel | None) -> BanditArtifact:
    """`art` with its meta's guard recording the mean cost (ms) of the greedy plans it serves on
    `contexts`, pins included (`served_cost_ms`), written to its meta.json."""
    meta = art.meta
    pol = BanditPolicy(BanditPolicy.load(art.path).module, meta, epsilon=0.0)  # the module, with this meta's pins
    cost = cost or CostModel(**meta["cost"])
    meta["guard"]["served_cost_ms"] = round(float(np.mean(
        [cost.plan_ms(pol.greedy(c.features, c.available), returned=c.returned) for c in contexts])), 3)
    (art.path / META_FILE).write_text(json.dumps(meta, indent=2))
    return BanditArtifact(art.path, art.version, meta)


def _judge(probe: BanditArtifact, older: list[LoggedContext], newer: list[LoggedContext], split: int | None,
           cost: CostModel | None) -> dict[str, Any]:
    """`rl.guard.judge` of a probe trained on `older` (at the price its training settled on, or,
    with a budget, at the price the static plans meet it)."""
    meta = probe.meta
    gains = RewardConfig(**{**meta["reward"], "price_per_10ms": 0.0, "budget_ms": None})  # tables of gains
    env = ReplayBanditEnv(older + newer, meta["strategies"], meta["levels"], gains,
                          cost=cost or CostModel(**meta["cost"]))
    return judge(env, older, newer, split, BanditPolicy.load(probe.path, epsilon=0.0).greedy,
                 float(meta["price_per_10ms"]), meta["budget_ms"])


def _train_once(contexts: list[LoggedContext], strategies: list[str], out_dir: Path, version: str,
                levels: Sequence[int], reward: RewardConfig | None, ppo: PPOConfig, feature_names: list[str] | None,
                progress: bool, cost: CostModel | None, extra_meta: dict[str, Any] | None = None) -> BanditArtifact:
    """One training (warm start, then PPO) on all of `contexts`, written to `out_dir/version/`."""
    import ray
    from ray.tune.registry import register_env

    reward = (reward or RewardConfig()).model_copy(deep=True)  # the dual ascent moves its price
    cost = cost or CostModel()
    env = ReplayBanditEnv(contexts, strategies, levels, reward, seed=ppo.seed, cost=cost)
    obs_dim = int(env.observation_space.shape[0])
    if feature_names is not None and len(feature_names) != obs_dim:
        raise ValueError(f"{len(feature_names)} feature names for {obs_dim} feature dimensions")
    target = Path(out_dir).resolve() / version  # RLlib wants absolute paths
    if target.exists():
        raise FileExistsError(f"artifact {target} already exists")
    t_tables = time.perf_counter()
    for c in env.contexts:  # warm the shared table cache once, in the driver
        env.table(c)
    t_tables = time.perf_counter() - t_tables

    session = uuid.uuid4().hex
    _SESSIONS[session] = env
    started_ray, algo, threads = False, None, torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        with quiet_ray_logs():
            torch.set_num_threads(ppo.torch_threads)
            if not ray.is_initialized():  # else: reuse the caller's connection (local or a cluster)
                ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False, logging_level=logging.ERROR)
                started_ray = True
            t1 = time.perf_counter()
            register_env(ENV_NAME, _make_env)
            algo = _algo_config(session, ppo).build_algo()
            split = feature_names.index(REGIME_FEATURE) if feature_names and REGIME_FEATURE in feature_names else None
            warm, search = warm_start(algo, env, ppo, split) if ppo.warm_start_steps else ([], [])
            t2 = time.perf_counter()
            curve = _train_loop(algo, ppo.iterations, progress, version)
            t3 = time.perf_counter()
            meta = {"version": version, "strategies": list(env.strategies), "levels": list(env.levels),
                    "obs_dim": obs_dim, "feature_names": list(feature_names) if feature_names is not None else None,
                    "created": time.time(), "ppo": ppo.model_dump(), "reward": reward.model_dump(mode="json"),
                    "cost": cost.model_dump(mode="json"), "price_per_10ms": reward.price_per_10ms,
                    "budget_ms": reward.budget_ms, "price_search": search, "n_contexts": len(env.contexts),
                    "full_information_contexts": sum(c.full for c in env.contexts),
                    "seconds": {"tables": t_tables, "ray_init": t1 - t0, "build": t2 - t1, "train": t3 - t2},
                    "reward_curve": curve, "warm_start_curve": warm, **(extra_meta or {})}
            _write_artifact(algo, target, meta)
    finally:
        if algo is not None:
            algo.stop()
        _SESSIONS.pop(session, None)
        algo = None
        gc.collect()  # RLlib's algorithm holds reference cycles: without this a bench of many trainings grew by GBs
        torch.set_num_threads(threads)
        if started_ray:
            ray.shutdown()
    return BanditArtifact(path=target, version=version, meta=meta)


def _train_loop(algo: Any, iterations: int, progress: bool, version: str) -> list[float]:
    """`iterations` calls of `algo.train()`; the mean episode reward of each (the last batch's episodes)."""
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=iterations, desc=f"PPO bandit {version}", unit="it")
    curve: list[float] = []
    for _ in range(iterations):
        result = algo.train()
        curve.append(float(result[ENV_RUNNER_RESULTS].get(EPISODE_RETURN_MEAN, np.nan)))
        if bar is not None:
            bar.set_postfix(reward=f"{curve[-1]:.4f}")
            bar.update()
    if bar is not None:
        bar.close()
    return curve


def _write_artifact(algo: Any, target: Path, meta: dict[str, Any]) -> None:
    """Write the learner's RLModule and meta.json into a staging dir next to `target`, then rename it."""
    from ray.rllib.core import DEFAULT_MODULE_ID

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.staging-") as tmp:
        staging = Path(tmp).resolve() / target.name  # RLlib reads paths as URIs: a relative one has no scheme
        staging.mkdir()
        # The learner's module (not the env runner's inference-only copy): the freshest weights.
        algo.learner_group.foreach_learner(
            lambda learner: learner.module[DEFAULT_MODULE_ID].save_to_path(str(staging / MODULE_DIR)))
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        staging.rename(target)  # same filesystem: the artifact appears complete or not at all
