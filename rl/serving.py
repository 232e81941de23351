"""The serving policy's configuration, and building it from a version name.

`version` comes from the orchestrator's `user_config` (never from a request):
- `fixed`: the cold-start fixed plan with epsilon-uniform exploration (`rl.policy.FixedPolicy`);
- `latest`: the newest trained bandit under the bandit directory;
- any other name: that bandit artifact (`rl.bandit.BanditPolicy`, the RLModule alone).
Either is wrapped in `ShadowPolicy` with the configured shadow share (`shadow_share` for
the fixed policy, `shadow_share_trained` for a bandit), so logged propensities are those
of the mixture actually served. The orchestrator, the retraining job (which compares
the serving policy with a candidate) and the bench build policies here, so all three
serve exactly the same thing for the same version.
"""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rl.artifact import latest_bandit
from rl.policy import DEFAULT_BUDGETS, FixedPolicy, Policy, ShadowPolicy

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class PolicyArgs(BaseModel):
    """How the serving policy explores and what it serves before a bandit is trained."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field("fixed", description="the cold-start policy: 'fixed', a fixed plan with epsilon-uniform "
                      "exploration. The orchestrator's user_config `version` switches to a trained bandit")
    budgets: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_BUDGETS),
                                    description="the fixed plan: candidates per strategy (0, 10, 25, 50 or 100)")
    epsilon: float = Field(0.1, ge=0, le=1, description="share of requests that get a uniformly random plan "
                           "(the fixed policy's exploration, and the trained bandit's epsilon floor)")
    shadow_share: float = Field(0.1, ge=0, le=1, description="share of requests that are shadow exploration (every "
                                "strategy at its top budget, logged for counterfactual training) while the cold-start "
                                "fixed policy serves")
    shadow_share_trained: float = Field(0.03, ge=0, le=1, description="the shadow share once a trained bandit serves: "
                                        "exploration costs reward, so it drops when there is a policy to exploit")
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
    return ShadowPolicy(base, args.shadow_share_trained, args.seed)
