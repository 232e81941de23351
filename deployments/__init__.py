"""Ray Serve deployments (one file each), the orchestrator, the feedback actors and the
app builder. Thin wrappers over `retrievers/`, `rl/` and `ranking/`.
(Arrives with the serving issue; the foundation issue only reserves the package.)"""
