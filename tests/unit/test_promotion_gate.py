"""The bandit's promotion gate: on logs with bound tables it decides on `lower` (exact where the
logs know a plan, what was fetched elsewhere), never on the reward model that trained the
candidate; without them, on the exact shadow estimate only with enough shadow contexts
(rl.promotion.MIN_SHADOW), else on DR; no Ray."""
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


def bounded_logs(n: int, rng: np.random.Generator) -> list[LoggedDecision]:
    """n requests served lexical 25 (reward r ~ 1 +- 0.3): each knows its sub-plans exactly
    (lexical 10 earns r + 0.05, being cheaper), and for dense nothing was fetched, so every
    dense plan's bound is the lexical part alone (here: the price of dense's cost, -0.02).
    The reward model (DR's q) believes dense 100 earns r + 1."""
    served, out = {"lexical": 25, "dense": 0}, []
    for _ in range(n):
        r = 1.0 + rng.normal(0, 0.3)
        bound = np.full(len(SPACE.grid()), -0.02)
        bound[SPACE.index(served)], bound[SPACE.index({"lexical": 10, "dense": 0})] = r, r + 0.05
        model = bound.copy()
        model[SPACE.index({"lexical": 0, "dense": 100})] = r + 1.0
        out.append(LoggedDecision(np.zeros(2), served, 1.0, r, tuple(STRATS), model=model, bound=bound))
    return out


def test_the_gate_does_not_trust_the_model_that_trained_the_candidate():
    """A candidate that moves to a plan the logs never fetched is judged at what the fetched
    lists held (`lower`), not at the reward model's word: DR alone would promote it (+1 by the
    model); `lower` refuses it (-1.02 exactly). A candidate that keeps to what was fetched is
    judged exactly: lexical 10 is promoted at +0.05."""
    logs = bounded_logs(60, np.random.default_rng(1))
    serving = FixedPolicy(STRATS, {"lexical": 25, "dense": 0}, epsilon=0.0)
    deeper = FixedPolicy(STRATS, {"lexical": 0, "dense": 100}, epsilon=0.0)
    q = np.zeros(len(SPACE.grid()))
    record = gate(deeper, serving, logs, SPACE, q, tolerance=0.0)
    assert record["estimator"] == "lower" and not record["promote"]
    mean_r = np.mean([d.reward for d in logs])
    assert record["comparison"]["difference"] == pytest.approx(-0.02 - mean_r, abs=1e-4)
    assert record["candidate"]["dr"]["value"] == pytest.approx(mean_r + 1.0, abs=1e-4)  # what DR would have said
    assert gate(deeper, serving, logs, SPACE, q, tolerance=0.0, estimator="dr")["promote"]
    cheaper = gate(FixedPolicy(STRATS, {"lexical": 10, "dense": 0}, epsilon=0.0), serving, logs, SPACE, q,
                   tolerance=0.0)
    assert cheaper["promote"] and cheaper["comparison"]["difference"] == pytest.approx(0.05, abs=1e-4)
