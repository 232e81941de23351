"""Ray Serve deployments (one file each: retriever, ranker, orchestrator), the feedback
actors, the app's arguments and HTTP schemas, and the app builder (`app.build_app`).
Thin wrappers over `retrievers/`, `ranking/`, `rl/` and `ltrr/`."""
