"""Learning to retrieve: the action space and serving policies (`policy.py`); context
features, the bandit environment, RLlib training and off-policy evaluation join it in
the bandit milestone. Knows nothing of HTTP; works on arrays and Parquet."""
