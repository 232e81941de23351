"""Retraining and rollback as Ray Jobs: submitted through the Jobs API by `ltrr retrain`,
`ltrr rollback` and `POST /admin/retrain`, and run by this module's entry point:

    python -m deployments.jobs retrain --state STATE --what bandit|ranker|all [--tolerance T] [--ppo-iterations N]
    python -m deployments.jobs rollback --state STATE --what bandit|ranker

Why jobs: training runs next to the service on the cluster (it reads the feedback
actors, needs CPUs, may take minutes) and outlives the HTTP request or the shell that
asked for it; the Jobs API gives it an id, a status and logs. The entry point prints
one JSON line (the result) last, so `job_info` can return it.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from core.env import configure

WHAT = ("bandit", "ranker", "all")
MAX_PPO_ITERATIONS = 1000


def _client(dashboard: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(dashboard)


def submit(dashboard: str, state: Path, action: str, what: str, tolerance: float | None = None,
           ppo_iterations: int | None = None) -> str:
    """Submit a retrain or rollback job; returns the job id."""
    if action not in ("retrain", "rollback"):
        raise ValueError(f"unknown job action {action!r}")
    if what not in WHAT or (action == "rollback" and what == "all"):
        raise ValueError(f"--what must be one of {', '.join(WHAT if action == 'retrain' else WHAT[:2])}, got {what!r}")
    cmd = [sys.executable, "-m", "deployments.jobs", action, "--state", str(Path(state).resolve()), "--what", what]
    if tolerance is not None:
        cmd += ["--tolerance", str(float(tolerance))]
    if ppo_iterations is not None:
        if not 1 <= ppo_iterations <= MAX_PPO_ITERATIONS:
            raise ValueError(f"ppo_iterations must be between 1 and {MAX_PPO_ITERATIONS}, got {ppo_iterations}")
        cmd += ["--ppo-iterations", str(int(ppo_iterations))]
    job_id = f"ltrr-{action}-{what}-{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}"
    return _client(dashboard).submit_job(entrypoint=shlex.join(cmd), submission_id=job_id,
                                         metadata={"ltrr": action, "what": what})


def job_info(dashboard: str, job_id: str) -> dict[str, Any]:
    """Status, message, and the job's result (its last JSON line) once it finished."""
    client = _client(dashboard)
    info = client.get_job_info(job_id)
    out: dict[str, Any] = {"job_id": job_id, "status": str(info.status.value if hasattr(info.status, "value")
                                                            else info.status),
                           "message": info.message, "start_time": info.start_time, "end_time": info.end_time}
    if out["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
        logs = client.get_job_logs(job_id)
        lines = [ln for ln in logs.strip().splitlines() if ln.startswith("{")]
        if lines:
            try:
                out["result"] = json.loads(lines[-1])
            except json.JSONDecodeError:
                pass
        out["log_tail"] = logs.strip().splitlines()[-15:]
    return out


def wait(dashboard: str, job_id: str, timeout_s: float = 1800) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        info = job_info(dashboard, job_id)
        if info["status"] in ("SUCCEEDED", "FAILED", "STOPPED") or time.monotonic() > deadline:
            return info
        time.sleep(1)


def run(state: Path, action: str, what: str, tolerance: float | None = None,
        ppo_iterations: int | None = None) -> dict[str, Any]:
    """The job itself, on a driver connected to the cluster: export the feedback actors'
    logs, retrain or roll back through `learning.retrain`, promote through Serve's
    user_config, and wait until the service serves what was promoted."""
    import asyncio

    from deployments.cluster import ServePromoter
    from deployments.config import AppArgs
    from deployments.feedback import RayFeedback
    from learning import retrain
    from retrievers.index import IndexHandle
    from rl.train import PPOConfig

    promoter = ServePromoter(state)
    args = AppArgs.model_validate(promoter.app_args)
    paths = promoter.paths
    if action == "rollback":
        result = retrain.rollback(paths, what, promoter)  # type: ignore[arg-type]
    else:
        logs = paths.new_export().resolve()
        asyncio.run(RayFeedback.lookup(args.feedback_shards).export(logs))
        requests, events = retrain.read_logs(logs)
        catalog = IndexHandle.open(Path(args.index_dir)).catalog()  # the ranker's features, and the bandit's credit
        result = {"logs": str(logs), **retrain.retrain(paths, what, requests, events, args.policy,
                                                        list(args.all_strategies), catalog, promoter, tolerance,
                                                        PPOConfig(iterations=ppo_iterations) if ppo_iterations
                                                        else None)}
    result["health"] = promoter.wait()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deployments.jobs")
    p.add_argument("action", choices=["retrain", "rollback"])
    p.add_argument("--state", required=True)
    p.add_argument("--what", choices=WHAT, default="all")
    p.add_argument("--tolerance", type=float, default=None, help="OPE gate tolerance (reward units)")
    p.add_argument("--ppo-iterations", type=int, default=None, help="the bandit's PPO iterations (default 60)")
    args = p.parse_args(argv)
    configure()
    import ray

    ray.init(address="auto", namespace="ltrr", logging_level="ERROR", log_to_driver=False)
    try:
        result = run(Path(args.state), args.action, args.what, args.tolerance, args.ppo_iterations)
    finally:
        ray.shutdown()
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
