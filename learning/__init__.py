"""Learning jobs, free of Ray: retraining the bandit and the ranker from exported
feedback logs, gating each candidate model, and recording promotions. `deployments.jobs`
runs them as Ray Jobs against the live service; the bench calls the same functions
in-process. Imports `core`, `retrievers`, `ranking`, `rl` and `engine`."""
