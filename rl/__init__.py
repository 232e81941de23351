"""Learning to retrieve: context features, the bandit environment, RLlib training,
policy loading and off-policy evaluation. Knows nothing of HTTP; works on arrays and Parquet.
(Arrives with the bandit issue; the foundation issue only reserves the package.)"""
