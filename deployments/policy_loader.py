"""Build the orchestrator's serving policy from the app args and a version name.

`version` comes from the orchestrator's `user_config` (never from a request):
- `fixed`: the cold-start fixed plan with epsilon-uniform exploration (`rl.policy.FixedPolicy`);
- `latest`: the newest trained bandit under the bandit directory;
- any other name: that bandit artifact (`rl.bandit.BanditPolicy`, the RLModule alone).
Either is wrapped in `ShadowPolicy` with the configured shadow share (`shadow_share` for
the fixed policy, `shadow_share_trained` for a bandit), so logged propensities are those
of the mixture actually served.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from deployments.config import AppArgs
from rl.policy import FixedPolicy, ShadowPolicy

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def latest_bandit(root: Path) -> str | None:
    versions = sorted(p.name for p in root.glob("*") if (p / "meta.json").is_file()) if root.is_dir() else []
    return versions[-1] if versions else None


def build_policy(args: AppArgs, strategies: list[str], version: str, bandit_dir: str | None = None) -> Any:
    """The serving policy for `version` (see the module docstring); ValueError if it cannot be loaded."""
    p = args.policy
    if version in ("", "fixed"):
        base: Any = FixedPolicy(strategies, p.budgets, p.epsilon, p.seed)
    else:
        root = Path(bandit_dir or args.bandit_models_dir)
        if version == "latest":
            found = latest_bandit(root)
            if found is None:
                base = FixedPolicy(strategies, p.budgets, p.epsilon, p.seed)
                return ShadowPolicy(base, p.shadow_share, p.seed)
            version = found
        if not _VERSION.match(version):
            raise ValueError(f"invalid bandit version {version!r}")
        from rl.bandit import BanditPolicy

        base = BanditPolicy.load(root / version, epsilon=p.epsilon, seed=p.seed, temperature=p.temperature)
        if list(base.strategies) != list(strategies):
            raise ValueError(f"bandit {version} was trained for strategies {base.strategies}, "
                             f"the app serves {strategies}")
        return ShadowPolicy(base, p.shadow_share_trained, p.seed)
    return ShadowPolicy(base, p.shadow_share, p.seed)
