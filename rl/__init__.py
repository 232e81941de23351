"""Learning to retrieve: the action space and serving policies (`policy.py`), the
counterfactual reward of a plan (`reward.py`), the one-step replay bandit environment
(`env.py`) and off-policy estimators (`ope.py`). RLlib training and policy loading join
them in the bandit milestone. Knows nothing of HTTP; works on arrays and records."""
