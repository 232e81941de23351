"""The bandit's promotion gate decides on the exact shadow estimate only with enough shadow
contexts (rl.promotion.MIN_SHADOW), else on DR; no Ray."""
from __future__ import annotations

import numpy as np
import pytest

from rl.policy import ActionSpace, FixedPolicy
from rl.promotion import MIN_SHADOW, LoggedDecision, gate

STRATS = ["lexical", "dense"]
SPACE = ActionSpace(STRATS)
SERVED = {"lexical": 10, "dense": 0}
OTHER = {"lexical": 0, "dense": 10}


def logs(n: int, shadow: int, rng: np.random.Generator) -> list[LoggedDecision]:
    """n decisions served SERVED (propensity 1, reward 1); the first `shadow` carry every plan's
    reward, where OTHER earns 0.05 more than SERVED in each context."""
    out = []
    for k in range(n):
        table = None
        if k < shadow:
            table = np.zeros(len(SPACE.grid()))
            base = 1.0 + rng.normal(0, 0.3)
            table[SPACE.index(SERVED)], table[SPACE.index(OTHER)] = base, base + 0.05
        out.append(LoggedDecision(np.zeros(2), dict(SERVED), 1.0, 1.0, tuple(STRATS), shadow=table is not None,
                                  table=table))
    return out


@pytest.mark.parametrize(("shadow", "estimator"), [(3, "dr"), (MIN_SHADOW - 1, "dr"), (MIN_SHADOW, "shadow")])
def test_a_handful_of_shadow_contexts_is_not_evidence(shadow, estimator):
    """Three shadow contexts whose paired differences agree give a narrow interval that says
    nothing about the traffic: below MIN_SHADOW the gate decides on DR over all the logs, and
    the record says which estimate decided and on how many shadow contexts."""
    rng = np.random.default_rng(0)
    record = gate(FixedPolicy(STRATS, OTHER, epsilon=0.0), FixedPolicy(STRATS, SERVED, epsilon=0.0),
                  logs(40, shadow, rng), SPACE, q=np.zeros(len(SPACE.grid())), tolerance=0.0)
    assert record["estimator"] == estimator and record["shadow_logs"] == shadow
    assert "shadow" in record["candidate"]  # still estimated and reported
    if estimator == "shadow":
        assert record["promote"] and record["comparison"]["difference"] == pytest.approx(0.05)
