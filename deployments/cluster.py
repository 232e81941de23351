"""Start, deploy to, and stop a local Ray cluster: the only code that starts clusters.

`up` starts a head node bound to 127.0.0.1 if none is running, builds missing indexes,
renders `serve_config.yaml` with absolute paths into `<state>/serve_config.yaml`,
deploys it with `serve deploy`, and waits until /healthz answers. `down` shuts Serve
down and stops Ray. `redeploy_with` changes one deployment's options or user_config in
the rendered config and deploys again: Serve then updates only what changed (a new
ranker `user_config` calls `reconfigure()` on the live replicas, no restart).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from core.env import configure
from core.paths import DASHBOARD_URL, METRICS_PORT, ModelKind, StatePaths, base_url

# Ray Serve's throughput options that `ltrr up` turns on (benchmarks/serve_latency.py measures each
# on and off; README "Serving latency"). They are read when Ray's processes start, so they go in the
# environment of `ray start`; a value already in the environment wins (e.g. ...=0 to measure without).
SERVE_ENV: dict[str, str] = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
# Only for the single-machine head that `ltrr up` starts on 127.0.0.1. The throughput mode turns on
# Serve's direct ingress, whose ingress replicas drain for at least 30 s when they stop, so that an
# external load balancer (an ALB, a Kubernetes Service) can deregister them first. Locally no such
# balancer exists, and the drain made every `ltrr down` (and every rolling restart of the
# orchestrator) wait 30 s for nothing: measured 31.7 s for `serve shutdown`, 7.7 s for `ray stop`.
# cluster.yaml and the KubeRay pods keep Ray's 30 s.
LOCAL_ENV: dict[str, str] = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}


def ray_env() -> dict[str, str]:
    """The environment for the local `ray start`: ltrr's process defaults, then SERVE_ENV and
    LOCAL_ENV under what is set (a value already in the environment wins)."""
    return {**SERVE_ENV, **LOCAL_ENV, **configure()}


class ClusterError(RuntimeError):
    """The cluster could not be started, deployed to or reached."""


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise ClusterError(f"`{name}` is not installed in this environment")
    return found


def ray_running() -> bool:
    """Whether a Ray cluster answers where `ray status` would look: RAY_ADDRESS, else the GCS
    address that the last head started on this machine recorded (<ray temp dir>/ray_current_cluster).
    A TCP connect to that address instead of running `ray status`, which spent 2-4 s starting
    Python on every `ltrr up` and `ltrr down`; an address of another form (ray://...) still asks
    `ray status`."""
    from ray._common.utils import get_ray_address_file

    address = os.environ.get("RAY_ADDRESS", "").strip()
    if not address:
        recorded = Path(get_ray_address_file(None))
        address = recorded.read_text().strip() if recorded.is_file() else ""
    if not address:
        return False
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return subprocess.run([_bin("ray"), "status"], capture_output=True, timeout=60).returncode == 0
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def start_ray(num_cpus: int) -> bool:
    """Start a head node on 127.0.0.1 unless one runs; True if this call started it."""
    if ray_running():
        return False
    cmd = [_bin("ray"), "start", "--head", f"--num-cpus={num_cpus}", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--disable-usage-stats",
           f"--metrics-export-port={METRICS_PORT}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=ray_env())
    if proc.returncode != 0:
        raise ClusterError(f"ray start failed:\n{proc.stdout}\n{proc.stderr}")
    return True


def admin_token(state: Path) -> str:
    """The admin token of this state directory: read from <state>/admin_token (mode 0600),
    generated (256 random bits) on first use. Clients send `Authorization: Bearer <token>`."""
    path = StatePaths(state).admin_token
    if path.is_file():
        return path.read_text().strip()
    state.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def render_config(template: Path, out: Path, index_dir: Path, state_dir: Path, port: int,
                  overrides: dict | None = None) -> dict:
    """Copy the Serve config with absolute paths (replicas do not share our cwd)."""
    config = yaml.safe_load(template.read_text())
    config["http_options"]["port"] = port
    app = config["applications"][0]
    app["args"].update({"index_dir": str(index_dir.resolve()), "state_dir": str(state_dir.resolve())})
    app["args"].update(overrides or {})
    paths = StatePaths(state_dir).resolved()
    for dep in app.get("deployments", []):
        if dep["name"] == "ranker":
            dep.setdefault("user_config", {})["models_dir"] = str(paths.ranker_models)
        if dep["name"] == "orchestrator":
            dep.setdefault("user_config", {})["bandit_dir"] = str(paths.bandit_models)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def deploy(config_path: Path) -> None:
    proc = subprocess.run([_bin("serve"), "deploy", str(config_path), "-a", DASHBOARD_URL], capture_output=True,
                          text=True, timeout=300, env=configure())
    if proc.returncode != 0:
        raise ClusterError(f"serve deploy failed:\n{proc.stdout}\n{proc.stderr}")


def wait_healthy(base_url: str, timeout_s: float = 600, expect_ranker: str | None = None,
                 expect_policy: str | None = None) -> dict:
    """Poll until /healthz answers 200, every strategy has a running replica, and (if asked)
    the ranker serves `expect_ranker` and the orchestrator the policy `expect_policy`."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base_url}/healthz", timeout=5)
            if r.status_code == 200:
                body = r.json()
                starting = [s["name"] for s in httpx.get(f"{base_url}/strategies", timeout=10).json()
                            if s["replicas"] < 1]
                if starting:
                    last = f"strategies starting: {', '.join(starting)}"
                elif expect_ranker not in (None, body.get("ranker")):
                    last = f"ranker {body.get('ranker')}"
                elif expect_policy not in (None, body.get("policy")):
                    last = f"policy {body.get('policy')}"
                else:
                    return body
            else:
                last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)  # two cheap GETs: a swap or a start is seen within half a second of happening
    status = subprocess.run([_bin("serve"), "status", "-a", DASHBOARD_URL], capture_output=True, text=True,
                            timeout=60).stdout
    raise ClusterError(f"ltrr did not become healthy within {timeout_s:.0f}s (last: {last}).\n{status}")


def deployment_entry(config_path: Path, deployment: str) -> dict:
    """One deployment's entry in a rendered config ({} if it has none)."""
    if not config_path.is_file():
        raise ClusterError(f"{config_path} does not exist: is ltrr up (with this --state)?")
    config = yaml.safe_load(config_path.read_text())
    return next((d for d in config["applications"][0].get("deployments", []) if d["name"] == deployment), {})


def redeploy_with(config_path: Path, deployment: str, changes: dict) -> dict:
    """Update one deployment's entry in the rendered config and deploy it again.
    A value of None removes that key (e.g. num_replicas when switching to autoscaling)."""
    if not config_path.is_file():
        raise ClusterError(f"{config_path} does not exist: is ltrr up (with this --state)?")
    config = yaml.safe_load(config_path.read_text())
    deps = config["applications"][0].setdefault("deployments", [])
    entry = next((d for d in deps if d["name"] == deployment), None)
    if entry is None:
        entry = {"name": deployment}
        deps.append(entry)
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        elif isinstance(value, dict) and isinstance(entry.get(key), dict):
            entry[key] = {**entry[key], **value}
        else:
            entry[key] = value
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    deploy(config_path)
    return entry


def ray_processes_alive() -> bool:
    """Whether any process that `ray stop` stops is alive on this machine: Ray's own list
    (RAY_PROCESSES), matched as `ray stop` matches it (the executable's name, or the command line)."""
    # ray first: importing it puts its bundled psutil (ray/thirdparty_files) on the path
    from ray.autoscaler._private.constants import RAY_PROCESSES  # noqa: I001
    import psutil

    for proc in psutil.process_iter(["name", "cmdline"]):
        name, cmdline = proc.info.get("name") or "", proc.info.get("cmdline") or []
        line = subprocess.list2cmdline(cmdline)
        if any(keyword in (name if by_name else line) for keyword, by_name in RAY_PROCESSES):
            return True
    return False


def down() -> None:
    """Shut Serve down and stop Ray (both are no-ops when nothing runs). `ray stop` runs only
    if a Ray process is alive: with nothing running it spent about 2 s starting Python, before
    every `ltrr up` of the tests and the demo."""
    if ray_running():
        subprocess.run([_bin("serve"), "shutdown", "-y", "-a", DASHBOARD_URL], capture_output=True, timeout=300)
    if ray_processes_alive():
        subprocess.run([_bin("ray"), "stop", "--force"], capture_output=True, timeout=300)
    else:  # what `ray stop` does last: forget the recorded address of a cluster that is gone
        from ray._common.utils import reset_ray_address

        reset_ray_address()


def slug(spec: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", spec.replace("builtin:", "")).strip("-").lower() or "index"


DEPLOYMENT_OF: dict[str, str] = {"bandit": "orchestrator", "ranker": "ranker"}  # whose user_config holds it


class ServePromoter:
    """`learning.retrain.Promoter` for the running service: the version serving now comes
    from the rendered Serve config (and, for a ranker given as `latest`, from /healthz);
    promoting changes only that deployment's `user_config`, so Serve calls `reconfigure()`
    on the live replicas: no restart, no failed request."""

    def __init__(self, state: Path) -> None:
        self.paths = StatePaths(state).resolved()
        config = yaml.safe_load(self.config_path.read_text()) if self.config_path.is_file() else None
        if config is None:
            raise ClusterError(f"{self.config_path} does not exist: is ltrr up (with this --state)?")
        self.config = config
        self.url = base_url(int(config["http_options"]["port"]))

    @property
    def config_path(self) -> Path:
        return self.paths.serve_config

    @property
    def app_args(self) -> dict:
        return self.config["applications"][0]["args"]

    def current(self, kind: ModelKind) -> str:
        version = str(deployment_entry(self.config_path, DEPLOYMENT_OF[kind]).get("user_config", {}).get("version", ""))
        if kind == "ranker" and version in ("", "latest"):  # ask the replica which concrete version it serves
            served = httpx.get(f"{self.url}/healthz", timeout=30).json()["ranker"]
            version = "fallback" if served == "fallback-rrf" else served
        return version or ("fixed" if kind == "bandit" else "latest")

    def promote(self, kind: ModelKind, version: str) -> None:
        redeploy_with(self.config_path, DEPLOYMENT_OF[kind], {"user_config": {"version": version}})

    def wait(self, timeout_s: float = 600) -> dict:
        """Wait until the service serves what the rendered config names."""
        def concrete(kind: ModelKind) -> str | None:
            v = str(deployment_entry(self.config_path, DEPLOYMENT_OF[kind]).get("user_config", {}).get("version", ""))
            if kind == "ranker" and v == "fallback":  # a rollback to no model: the replica reports the RRF name
                return "fallback-rrf"
            return None if v in ("", "latest", "fixed") else v
        return wait_healthy(self.url, timeout_s, expect_ranker=concrete("ranker"), expect_policy=concrete("bandit"))
