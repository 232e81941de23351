"""The serving policy's configuration, and building it from a version name.

`version` comes from the orchestrator's `user_config` (never from a request):
- `fixed`: the cold-start fixed plan, exploring the plans next to it (`rl.policy.FixedPolicy`);
- `latest`: the newest trained bandit under the bandit directory;
- any other name: that bandit artifact (`rl.bandit.BanditPolicy`, the RLModule alone).
Either is wrapped in `ShadowPolicy` with the configured shadow share (`shadow_share` for
the fixed policy, `shadow_share_trained` for a bandit, halving every `shadow_half_life`
full-information contexts the bandit was trained on, down to `shadow_floor`): off-path
shadow exploration costs compute, not quality, and its share decays as data accumulates. The orchestrator, the retraining job (which compares
the serving policy with a candidate) and the bench build policies here, so all three
serve exactly the same thing for the same version.
"""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rl.artifact import latest_bandit
from rl.policy import DEFAULT_BUDGETS, FixedPolicy, Policy, ShadowPolicy
from rl.reward import RewardConfig

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class PolicyArgs(BaseModel):
    """How the serving policy explores and what it serves before a bandit is trained."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field("fixed", description="the cold-start policy: 'fixed', a fixed plan with epsilon-uniform "
                      "exploration. The orchestrator's user_config `version` switches to a trained bandit")
    budgets: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_BUDGETS),
                                    description="the fixed plan: candidates per strategy (0, 10, 25, 50 or 100)")
    epsilon: float = Field(0.1, ge=0, le=1, description="share of requests served a plan next to the greedy one "
                           "(one strategy one budget level up or down): the fixed policy's and the bandit's "
                           "on-path exploration")
    shadow_share: float = Field(0.1, ge=0, le=1, description="share of requests that are shadow exploration (every "
                                "strategy at its top budget, logged for counterfactual training) while the cold-start "
                                "fixed policy serves")
    shadow_share_trained: float = Field(0.05, ge=0, le=1, description="the shadow share once a trained bandit serves, "
                                        "before its decay (see shadow_half_life)")
    shadow_half_life: int = Field(2000, ge=1, description="the trained shadow share halves for every this many "
                                  "full-information contexts the serving bandit was trained on")
    lookahead: bool = Field(False, description="fetch every strategy a plan calls at the top budget, serve the "
                            "plan's own prefix and log the rest: every deeper plan over the called strategies is then "
                            "exact in every request's log, at the price of the deeper calls' compute (engine.pipeline)")
    shadow_floor: float = Field(0.005, ge=0, le=1, description="the shadow share never decays below this")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="what the retraining job maximises: "
                                 "event weights, and the price of compute or a mean compute budget (ms)")
    temperature: float = Field(0.3, gt=0, le=10, description="a trained bandit samples each strategy's budget from "
                               "softmax(logits / temperature): below 1 sharpens towards the most likely plan")
    seed: int = Field(0, description="seed of the exploration draws")


def build_policy(args: PolicyArgs, strategies: list[str], version: str, bandit_dir: str | Path) -> Policy:
    """The serving policy for `version` (see the module docstring); ValueError if it cannot be loaded."""
    if version in ("", "fixed"):
        return ShadowPolicy(FixedPolicy(strategies, args.budgets, args.epsilon, args.seed), args.shadow_share,
                            args.seed)
    root = Path(bandit_dir)
    if version == "latest":
        found = latest_bandit(root)
        if found is None:
            return build_policy(args, strategies, "fixed", bandit_dir)
        version = found
    if not _VERSION.match(version):
        raise ValueError(f"invalid bandit version {version!r}")
    from rl.bandit import BanditPolicy

    base = BanditPolicy.load(root / version, epsilon=args.epsilon, seed=args.seed, temperature=args.temperature)
    if list(base.strategies) != list(strategies):
        raise ValueError(f"bandit {version} was trained for strategies {base.strategies}, "
                         f"the app serves {strategies}")
    return ShadowPolicy(base, shadow_share(args, int(base.meta.get("full_information_contexts") or 0)), args.seed)


def shadow_share(args: PolicyArgs, full_information: int) -> float:
    """The trained bandit's shadow share after `full_information` full-information contexts."""
    decayed = args.shadow_share_trained * 0.5 ** (full_information / args.shadow_half_life)
    return max(args.shadow_floor, min(args.shadow_share_trained, decayed))
