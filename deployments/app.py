"""The application builder that `serve_config.yaml` names: `import_path: deployments.app:build_app`.

It binds one `RetrieverDeployment` per strategy (named `retriever-<strategy>`), the
ranker and the orchestrator (the HTTP ingress). Replicas, autoscaling and CPU shares
per deployment come from `serve_config.yaml`; the defaults here fit every deployment
on a 2-core machine. Queue bounds and the answer past them (load shedding) come from
the args' `load_shedding` (see `deployments.config.LoadSheddingArgs`).
"""
from __future__ import annotations

from pathlib import Path

from ray.serve import Application
from ray.serve.config import BackpressureConfig

from deployments.config import AppArgs
from deployments.orchestrator import Orchestrator
from deployments.ranker import RankerDeployment
from deployments.retriever import RetrieverDeployment, deployment_name
from retrievers.index import IndexHandle


def build_app(args: dict) -> Application:
    """Build the ltrr app from its arguments (see `deployments.config.AppArgs`)."""
    cfg = AppArgs.model_validate(args)
    index = IndexHandle.open(Path(cfg.index_dir))  # fails early, with a clear message, on a bad index
    missing = [s for s in cfg.strategies if s not in index.strategies]
    if missing:
        raise ValueError(f"strategies {missing} are not built in {cfg.index_dir}; run `ltrr index` first")
    shed = cfg.load_shedding
    backpressure = BackpressureConfig(status_code=shed.status_code, retry_after_s=shed.retry_after_s)
    wrong = {s: n for s, n in cfg.shards.items() if s not in cfg.strategies or index.shards(s) != n}
    if wrong:
        raise ValueError(f"shards {wrong}: each must be a served strategy with that many shards built in "
                         f"{cfg.index_dir} (built: {index.manifest.get('shards', {})}); run `ltrr index --shards`")
    retrievers: dict = {}
    for s in cfg.strategies:
        if s in cfg.shards:  # one deployment per shard; the orchestrator scatters and merges
            retrievers[s] = [
                RetrieverDeployment.options(name=deployment_name(s, i), max_queued_requests=shed.retriever_max_queued,
                                            backpressure_config=backpressure).bind(s, cfg.index_dir, shard=i)
                for i in range(cfg.shards[s])]
            continue
        retrievers[s] = RetrieverDeployment.options(
            name=deployment_name(s), max_queued_requests=shed.retriever_max_queued,
            backpressure_config=backpressure).bind(
            s, cfg.index_dir, str(cfg.paths.feedback) if s == "memory" else None,
            cfg.feedback_shards if s == "memory" else 0)
    for name, custom in cfg.custom_strategies.items():  # user strategies, registered by import path
        retrievers[name] = RetrieverDeployment.options(
            name=deployment_name(name), max_queued_requests=shed.retriever_max_queued,
            backpressure_config=backpressure).bind(name, cfg.index_dir, custom=custom.model_dump())
    ranker = RankerDeployment.options(
        name="ranker", user_config={"models_dir": str(cfg.paths.ranker_models), "version": "latest"},
        max_queued_requests=shed.ranker_max_queued, backpressure_config=backpressure).bind(cfg.index_dir)
    return Orchestrator.options(name="orchestrator", max_queued_requests=shed.orchestrator_max_queued,
                                backpressure_config=backpressure).bind(retrievers, ranker, cfg.model_dump())
