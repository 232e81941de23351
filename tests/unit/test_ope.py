"""Off-policy estimators on hand-made arrays (exact values) and on a synthetic contextual
bandit whose true policy values are known analytically (seeded, hence deterministic)."""
from __future__ import annotations

import numpy as np
import pytest

from rl.ope import Z95, Estimate, compare, doubly_robust, ips, snips

# 3 contexts x 4 actions: Bernoulli means. Optimal actions: 2, 0, 3. Worst: 0, 3, 1.
MU = np.array([[0.1, 0.3, 0.8, 0.4],
               [0.7, 0.2, 0.5, 0.1],
               [0.3, 0.05, 0.4, 0.9]])
P_X = np.array([0.5, 0.3, 0.2])
N = 20_000
EPS = 0.5
GREEDY = np.array([1, 2, 0])  # the logging policy's favourite action: suboptimal everywhere


def behaviour() -> np.ndarray:
    """Epsilon-greedy around GREEDY: (1-eps) + eps/4 on the favourite, eps/4 elsewhere."""
    b = np.full(MU.shape, EPS / 4)
    b[np.arange(3), GREEDY] += 1 - EPS
    return b


def deterministic(actions: np.ndarray) -> np.ndarray:
    pi = np.zeros(MU.shape)
    pi[np.arange(3), actions] = 1.0
    return pi


OPTIMAL = deterministic(MU.argmax(axis=1))
WORST = deterministic(MU.argmin(axis=1))
UNIFORM = np.full(MU.shape, 0.25)


def true_value(pi: np.ndarray) -> float:
    return float((P_X[:, None] * pi * MU).sum())


@pytest.fixture(scope="module")
def logs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2024)
    b = behaviour()
    x = rng.choice(3, size=N, p=P_X)
    a = np.array([rng.choice(4, p=b[xi]) for xi in x])
    r = (rng.random(N) < MU[x, a]).astype(float)
    return {"x": x, "a": a, "r": r, "p": b[x, a]}


def estimates(logs: dict[str, np.ndarray], pi: np.ndarray, q: np.ndarray = MU) -> dict[str, Estimate]:
    x, a, r, p = logs["x"], logs["a"], logs["r"], logs["p"]
    target = pi[x, a]
    return {"ips": ips(r, p, target), "snips": snips(r, p, target),
            "dr": doubly_robust(r, p, target, q[x, a], (pi * q).sum(axis=1)[x])}


def test_exact_small_values():
    r, p, pi = [1.0, 0.0, 1.0], [0.5, 0.5, 0.25], [1.0, 0.0, 0.5]  # w = 2, 0, 2
    e = ips(r, p, pi)
    assert e.value == pytest.approx(4 / 3, abs=1e-15) and e.n == 3 and e.ess == pytest.approx(2.0, abs=1e-15)
    half = Z95 * np.std([2.0, 0.0, 2.0], ddof=1) / np.sqrt(3)
    assert (e.ci_low, e.ci_high) == (pytest.approx(4 / 3 - half), pytest.approx(4 / 3 + half))
    assert snips(r, p, pi).value == pytest.approx(1.0, abs=1e-15)
    # SNIPS delta-method CI: w = 2, 2, 2, 1; V = 4/7; z_i = V + w_i (r_i - V) / mean(w)
    r4, w4 = np.array([1.0, 0.0, 1.0, 0.0]), np.array([2.0, 2.0, 2.0, 1.0])
    s4 = snips(r4, [0.5, 0.5, 0.25, 0.5], [1.0, 1.0, 0.5, 0.5])
    z = 4 / 7 + w4 * (r4 - 4 / 7) / (7 / 4)
    half = Z95 * np.std(z, ddof=1) / 2
    assert s4.value == pytest.approx(4 / 7, abs=1e-15) and s4.ess == pytest.approx(49 / 13, abs=1e-15)
    assert (s4.ci_low, s4.ci_high) == (pytest.approx(4 / 7 - half, abs=1e-15), pytest.approx(4 / 7 + half, abs=1e-15))
    # DR terms: v + w (r - q) = 0.5 + 2*(1-0.6), 0.2 + 0, 0.1 + 2*(1-0.9) -> 1.3, 0.2, 0.3
    assert doubly_robust(r, p, pi, [0.6, 0.4, 0.9], [0.5, 0.2, 0.1]).value == pytest.approx(0.6, abs=1e-15)
    clipped = ips(r, p, pi, max_weight=1.5)
    assert clipped.value == pytest.approx(1.0, abs=1e-15) and clipped.n_clipped == 2 and clipped.max_weight == 1.5
    for bad in ({"rewards": [1.0, 0.0], "behaviour_p": [0.0, 0.5], "target_p": [1, 1]},
                {"rewards": [1.0, 0.0], "behaviour_p": [0.5, 0.5], "target_p": [1.5, 1]},
                {"rewards": [1.0, 0.0], "behaviour_p": [0.5], "target_p": [1, 1]},
                {"rewards": [1.0], "behaviour_p": [0.5], "target_p": [1]}):
        with pytest.raises(ValueError):
            ips(**bad)


def test_estimators_recover_the_optimal_policy_value(logs):
    v = true_value(OPTIMAL)
    assert v == pytest.approx(0.5 * 0.8 + 0.3 * 0.7 + 0.2 * 0.9, abs=1e-15)
    for name, e in estimates(logs, OPTIMAL).items():
        assert e.ci_low < v < e.ci_high, (name, e)
        assert abs(e.value - v) < 0.03, (name, e.value, v)
        assert e.n == N and 0 < e.ess < N


def test_uniform_and_worst_policy_values(logs):
    for pi in (UNIFORM, WORST):
        v = true_value(pi)
        for name, e in estimates(logs, pi).items():
            assert e.ci_low < v < e.ci_high, (name, e, v)


def test_dr_with_perfect_model_has_much_lower_variance(logs):
    est = estimates(logs, OPTIMAL)
    width = {k: e.ci_high - e.ci_low for k, e in est.items()}
    print(f"\nCI widths: {width}")
    # Analytic per-sample variances: the optimal action always has behaviour probability
    # eps/4, so w = 4/eps on a match. IPS: E[w^2 r^2] - V^2 = (4/eps) sum_x P(x) mu* - V^2.
    # DR with the true model: (4/eps) sum_x P(x) mu*(1-mu*) + Var_x(mu*).
    mu_star, v = MU.max(axis=1), true_value(OPTIMAL)
    var_ips = 4 / EPS * (P_X * mu_star).sum() - v ** 2
    var_dr = 4 / EPS * (P_X * mu_star * (1 - mu_star)).sum() + (P_X * mu_star ** 2).sum() - v ** 2
    assert width["ips"] == pytest.approx(2 * Z95 * np.sqrt(var_ips / N), rel=0.05)
    assert width["dr"] == pytest.approx(2 * Z95 * np.sqrt(var_dr / N), rel=0.05)
    # SNIPS (delta method, E[w] = 1): E[w^2 (r - V)^2] = (4/eps) sum_x P(x) [mu*(1-V)^2 + (1-mu*) V^2]
    var_snips = 4 / EPS * (P_X * (mu_star * (1 - v) ** 2 + (1 - mu_star) * v ** 2)).sum()
    assert width["snips"] == pytest.approx(2 * Z95 * np.sqrt(var_snips / N), rel=0.05)
    assert width["dr"] < 0.6 * width["ips"]  # analytic ratio sqrt(1.293 / 5.696) = 0.48
    # a useless reward model (all zeros) makes DR exactly IPS
    x, a, r, p = logs["x"], logs["a"], logs["r"], logs["p"]
    zero = doubly_robust(r, p, OPTIMAL[x, a], np.zeros(N), np.zeros(N))
    assert zero.value == est["ips"].value


def test_on_policy_ips_is_the_logged_mean(logs):
    b = behaviour()
    x, a, r, p = logs["x"], logs["a"], logs["r"], logs["p"]
    e = ips(r, p, b[x, a])
    assert e.value == r.mean() and e.ess == pytest.approx(N)
    assert snips(r, p, b[x, a]).value == pytest.approx(r.mean(), abs=1e-15)


def test_compare(logs):
    opt, uni, worst = (estimates(logs, pi) for pi in (OPTIMAL, UNIFORM, WORST))
    for k in ("ips", "snips", "dr"):
        c = compare(opt[k], uni[k])
        assert c["paired"] and c["not_worse"] and c["ci_low"] > 0, (k, c)
        assert c["difference"] == pytest.approx(opt[k].value - uni[k].value, abs=1e-15)
        truth = true_value(OPTIMAL) - true_value(UNIFORM)
        assert c["ci_low"] < truth < c["ci_high"], (k, c, truth)
        bad = compare(worst[k], opt[k])
        assert not bad["not_worse"] and bad["ci_high"] < 0, (k, bad)
        # a policy compared with itself: difference 0, not worse at any tolerance
        same = compare(opt[k], opt[k])
        assert same["difference"] == 0.0 and same["not_worse"] is False  # lower bound 0 is not > 0
        assert compare(opt[k], opt[k], tolerance=1e-9)["not_worse"]
    # unpaired (different logs): independent standard errors
    half = estimates({k: v[: N // 2] for k, v in logs.items()}, UNIFORM)["ips"]
    c = compare(opt["ips"], half)
    assert not c["paired"] and c["stderr"] == pytest.approx(np.hypot(opt["ips"].stderr, half.stderr))
    assert c["not_worse"]
    with pytest.raises(ValueError):
        compare(opt["ips"], uni["ips"], tolerance=-1)

