"""Helpers for tests that run the real service: the `ltrr` command line, and Serve's view
of the deployed app through the dashboard's REST API."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.paths import DASHBOARD_URL

DEMO_600 = "builtin:music-demo?n_tracks=600"
DEMO_PORT = 8123  # the live tier's shared service (tests/live/conftest.py)
# how often the shared service's processes export their metrics to the node's Prometheus
# endpoint (Ray's default is 10 s): tests that read counters wait for a few of these
METRICS_REPORT_S = 2.0
FAST_METRICS = {"RAY_metrics_report_interval_ms": str(int(METRICS_REPORT_S * 1000))}
DASHBOARD = DASHBOARD_URL


def ltrr(*args: str, timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`ltrr ARGS` in a subprocess, with `env` added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "ltrr.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def built_index(spec: str, out: Path, strategies: str | None = None, *options: str) -> Path:
    """Build a dataset's indexes with `ltrr index` (plus `options`) in a subprocess and return `out`.

    Why a subprocess: the pytest process also runs RLlib and torch (test_bandit_train comes
    first), and a Lucene indexing run in a process that already did that has crashed it
    (SIGSEGV; see ltrr/bench/report.py). Searching the built index in-process is fine."""
    built = ltrr("index", "--dataset", spec, "--out", str(out), "--json",
                 *(["--strategies", strategies] if strategies else []), *options)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-4000:]
    return out


def serve_app(app: str = "ltrr", dashboard: str = DASHBOARD) -> dict:
    """The app's entry of GET /api/serve/applications/ ({} if it is not deployed)."""
    body = httpx.get(f"{dashboard}/api/serve/applications/", timeout=30).json()
    return body.get("applications", {}).get(app, {})


def wait_for_app(check, what: str, timeout_s: float = 300, dashboard: str = DASHBOARD) -> dict:
    """Poll the deployed app until `check(app_entry)` holds and it is RUNNING; AssertionError if never."""
    deadline, app = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        app = serve_app(dashboard=dashboard)
        if app.get("status") == "RUNNING" and check(app):
            return app
        time.sleep(1)
    raise AssertionError(f"Serve never reached: {what}; last status {app.get('status')}")


FAST_FAILURE_DETECTION = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
ZONE_B = {"num_cpus": 1, "resources": {"zone_b": 8}, "node_ip_address": "127.0.0.1"}


def two_zone_cluster(monkeypatch, namespace: str):
    """Two Ray nodes on this machine (`ray.cluster_utils.Cluster`): a head with resource
    zone_a (and the dashboard, on 127.0.0.1) and a worker with zone_b (`ZONE_B`, to add it
    again after removing it), failures detected within ~3 s; this process is connected to it
    in `namespace`. Returns (cluster, worker node); the caller shuts both down.

    `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` and `ENABLE_RAY_CLUSTER=False` stop Ray from
    rewriting 127.0.0.1 to the machine's address, where nothing listens (test_multinode)."""
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ltrr("down")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"zone_a": 8}, "node_ip_address": "127.0.0.1", "include_dashboard": True,
        "dashboard_host": "127.0.0.1", "_system_config": FAST_FAILURE_DETECTION})
    try:
        node_b = cluster.add_node(**ZONE_B)
        ray.init(address=cluster.address, namespace=namespace, logging_level="ERROR")
        cluster.wait_for_nodes()
    except BaseException:
        ray.shutdown()
        cluster.shutdown()
        raise
    return cluster, node_b
