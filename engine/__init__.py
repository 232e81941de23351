"""The serving engine, free of Ray: the search pipeline (`engine.pipeline`: plan, fan
out, union, rank, log) and the feedback store (`engine.feedback_store`: durable request
and event logs per shard, with their aggregates in `engine.feedback_stats`). Ray Serve
deployments run it with remote callables; the bench and the tests run the same code
with in-process ones. Imports `core`, `retrievers`, `ranking` and `rl`."""
