"""The deployment configs, validated offline (no cluster, no network) with Ray's own validators.

- serve_config.yaml and k8s/rayservice.yaml's `spec.serveConfigV2`: `ServeDeploySchema.model_validate`
  (what `serve deploy` runs), the app args with `deployments.config.AppArgs`, and the deployment
  names against what `deployments.app.build_app` really builds (Serve's own `build_app`, offline).
- cluster.yaml (local provider, and its `# AWS:` variant): `prepare_config` then `validate_config`
  from `ray.autoscaler._private.util`, the same two steps `ray up` runs before touching a node.
Each validator is also shown to reject a deliberately broken copy, so these tests can fail.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from unittest import mock

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import DeploymentSchema, RayActorOptionsSchema, ServeDeploySchema

from deployments.config import AppArgs
from deployments.retriever import deployment_name
from retrievers import STRATEGIES

ROOT = Path(__file__).resolve().parents[2]
SERVE_CONFIG = ROOT / "serve_config.yaml"
RAYSERVICE = ROOT / "k8s" / "rayservice.yaml"
CLUSTER = ROOT / "cluster.yaml"
CPU_BUDGET = 2.0  # `ltrr up --num-cpus 2`: every deployment's minimum replicas must fit
EXPECTED_DEPLOYMENTS = {"orchestrator", "ranker", *(deployment_name(s) for s in STRATEGIES)}
# Compared between serve_config.yaml and the RayService (paths aside) so the two cannot drift.
COMPARED_KEYS = ("num_replicas", "autoscaling_config", "max_ongoing_requests", "ray_actor_options", "user_config")


# ---------------------------------------------------------------------------------- helpers

def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _built_deployments(args: dict) -> dict:
    """{name: Deployment} exactly as Serve builds the app from `args` (Serve's offline build step;
    the index is faked so the builder does not need one on disk)."""
    from ray.serve._private.build_app import build_app as serve_build_app

    import deployments.app as app_module

    cfg = AppArgs.model_validate(args)
    fake_index = mock.Mock(strategies=list(cfg.strategies))
    with mock.patch.object(app_module.IndexHandle, "open", return_value=fake_index):
        app = app_module.build_app(args)
    return {d.name: d for d in serve_build_app(app, name="ltrr").deployments}


def check_serve_config(config: dict) -> dict:
    """Validate a Serve config dict; raise ValueError (pydantic's ValidationError is one) on any
    problem. Returns {name: (num_cpus, min_replicas, max_replicas)} per deployment."""
    schema = ServeDeploySchema.model_validate(config)  # what `serve deploy` does first
    if [a.name for a in schema.applications] != ["ltrr"]:
        raise ValueError(f"expected one application 'ltrr', got {[a.name for a in schema.applications]}")
    raw_app = config["applications"][0]
    if raw_app["import_path"] != "deployments.app:build_app":
        raise ValueError(f"import_path {raw_app['import_path']!r} is not the app builder")
    AppArgs.model_validate(raw_app["args"])  # extra="forbid": a misspelt argument fails here
    built = _built_deployments(raw_app["args"])
    if set(built) != EXPECTED_DEPLOYMENTS:
        raise ValueError(f"the builder creates {sorted(built)}, expected {sorted(EXPECTED_DEPLOYMENTS)}")

    plan: dict[str, tuple[float, int, int]] = {}
    for raw, dep in zip(raw_app["deployments"], schema.applications[0].deployments):
        # Serve ignores unknown deployment keys silently (forward compatibility): a typo such
        # as `num_replica` would be dropped without a word, so refuse it here.
        unknown = set(raw) - set(DeploymentSchema.model_fields)
        if unknown:
            raise ValueError(f"deployment {dep.name!r}: unknown keys {sorted(unknown)}")
        unknown = set(raw.get("ray_actor_options", {})) - set(RayActorOptionsSchema.model_fields)
        if unknown:  # ignored by the schema as well, e.g. `num_cpu`
            raise ValueError(f"deployment {dep.name!r}: unknown ray_actor_options {sorted(unknown)}")
        if dep.name not in built:
            raise ValueError(f"deployment {dep.name!r} is not one the app builder creates: {sorted(built)}")
        if "num_cpus" not in raw.get("ray_actor_options", {}):
            raise ValueError(f"deployment {dep.name!r}: set ray_actor_options.num_cpus explicitly")
        has_replicas = isinstance(raw.get("num_replicas"), int)
        has_autoscaling = isinstance(raw.get("autoscaling_config"), dict)
        if dep.name.startswith("retriever-") and not (has_replicas or has_autoscaling):
            raise ValueError(f"retriever {dep.name!r} has neither num_replicas nor autoscaling_config")
        if has_autoscaling:
            auto = AutoscalingConfig(**raw["autoscaling_config"])
            lo, hi = auto.min_replicas, auto.max_replicas
        else:
            lo = hi = raw.get("num_replicas", built[dep.name].num_replicas)
        plan[dep.name] = (float(dep.ray_actor_options.num_cpus), lo, hi)
    missing = set(built) - set(plan)
    if missing:
        raise ValueError(f"deployments {sorted(missing)} are built but not configured")
    min_cpus = sum(cpus * lo for cpus, lo, _ in plan.values())
    if min_cpus > CPU_BUDGET + 1e-9:
        raise ValueError(f"minimum replicas need {min_cpus:.2f} CPUs > {CPU_BUDGET}")
    return plan


def comparable_deployments(config: dict) -> dict:
    """Per deployment, the settings that must agree between configs (paths excluded)."""
    out = {}
    for dep in config["applications"][0]["deployments"]:
        entry = {k: copy.deepcopy(dep.get(k)) for k in COMPARED_KEYS}
        if entry["user_config"]:
            entry["user_config"].pop("models_dir", None)
            entry["user_config"].pop("bandit_dir", None)
        out[dep["name"]] = entry
    return out


def rayservice_serve_config(manifest: dict) -> dict:
    if (manifest.get("apiVersion"), manifest.get("kind")) != ("ray.io/v1", "RayService"):
        raise ValueError(f"not a ray.io/v1 RayService: {manifest.get('apiVersion')} {manifest.get('kind')}")
    text = manifest["spec"]["serveConfigV2"]
    if not isinstance(text, str):
        raise TypeError("spec.serveConfigV2 must be a YAML string (a `|` block), not a mapping")
    return yaml.safe_load(text)


def check_rayservice_matches(manifest: dict, serve_config: dict) -> None:
    k8s = rayservice_serve_config(manifest)
    check_serve_config(k8s)
    ours, theirs = comparable_deployments(serve_config), comparable_deployments(k8s)
    if ours != theirs:
        diff = {n: (ours.get(n), theirs.get(n)) for n in set(ours) | set(theirs) if ours.get(n) != theirs.get(n)}
        raise ValueError(f"k8s serveConfigV2 deployments drifted from serve_config.yaml: {diff}")
    a, b = serve_config["applications"][0], k8s["applications"][0]
    for key in ("name", "route_prefix", "import_path"):
        if a[key] != b[key]:
            raise ValueError(f"application {key}: {a[key]!r} != {b[key]!r}")
    path_args = {"index_dir", "state_dir"}
    if {k: v for k, v in a["args"].items() if k not in path_args} != \
            {k: v for k, v in b["args"].items() if k not in path_args}:
        raise ValueError(f"app args drifted: {a['args']} vs {b['args']}")
    for key in path_args:
        if not b["args"][key].startswith("/"):
            raise ValueError(f"k8s args.{key} must be an absolute container path, got {b['args'][key]!r}")
    ranker = next(d for d in b["deployments"] if d["name"] == "ranker")
    if ranker["user_config"]["models_dir"] != f"{b['args']['state_dir']}/models/ranker":
        raise ValueError("ranker models_dir must be <state_dir>/models/ranker (as deployments.cluster.render_config does)")


def check_ray_cluster_spec(manifest: dict) -> float:
    """Structural checks KubeRay's CRD would make (no CRD schema offline); returns the CPUs that
    the minimum cluster offers to replicas."""
    spec = manifest["spec"]["rayClusterConfig"]
    groups = [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
    cpus = 0.0
    for name, group in groups:
        params = group.get("rayStartParams", {})
        bad = {k: v for k, v in params.items() if not isinstance(v, str)}
        if bad:
            raise ValueError(f"{name}: rayStartParams values must be strings for KubeRay: {bad}")
        containers = group["template"]["spec"]["containers"]
        if not containers or not all(c.get("image") for c in containers):
            raise ValueError(f"{name}: every container needs an image")
        res = containers[0]["resources"]
        if not (res.get("requests") and res.get("limits")):
            raise ValueError(f"{name}: set resources.requests and resources.limits")
        node_cpus = float(params["num-cpus"]) if "num-cpus" in params else float(res["limits"]["cpu"])
        if name == "head":
            cpus += node_cpus
        else:
            lo, n, hi = group["minReplicas"], group["replicas"], group["maxReplicas"]
            if not lo <= n <= hi:
                raise ValueError(f"{name}: need minReplicas <= replicas <= maxReplicas, got {lo}, {n}, {hi}")
            cpus += node_cpus * lo
    return cpus


def check_cluster_config(config: dict) -> dict:
    """What `ray up` does before touching a node: prepare_config (local provider preparation and
    the provider's defaults.yaml), then validate_config (ray-schema.json and cross-field checks)."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def aws_variant(text: str) -> dict:
    """The `# AWS: ` lines of cluster.yaml, as a YAML mapping."""
    lines = [re.sub(r"^# AWS: ?", "", line) for line in text.splitlines() if line.startswith("# AWS:")]
    if not lines:
        raise ValueError("cluster.yaml has no `# AWS:` block")
    return yaml.safe_load("\n".join(lines))


def apply_aws(config: dict, aws: dict) -> dict:
    """The substitution cluster.yaml's comment describes: drop min_workers, replace the rest."""
    out = copy.deepcopy(config)
    out.pop("min_workers", None)
    out.update(copy.deepcopy(aws))
    return out


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def serve_config() -> dict:
    return _load(SERVE_CONFIG)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return _load(RAYSERVICE)


@pytest.fixture(scope="module")
def cluster_text() -> str:
    return CLUSTER.read_text()


@pytest.fixture(scope="module")
def cluster(cluster_text) -> dict:
    return yaml.safe_load(cluster_text)


def _dep(config: dict, name: str) -> dict:
    return next(d for d in config["applications"][0]["deployments"] if d["name"] == name)


# ------------------------------------------------------------------------ serve_config.yaml

def test_serve_config_is_valid_and_fits_two_cpus(serve_config):
    plan = check_serve_config(serve_config)
    assert set(plan) == EXPECTED_DEPLOYMENTS
    min_cpus = sum(c * lo for c, lo, _ in plan.values())
    max_cpus = sum(c * hi for c, _, hi in plan.values())
    assert min_cpus <= CPU_BUDGET, plan
    assert min_cpus <= max_cpus
    # Serve listens on loopback by default (README: "bound to 127.0.0.1").
    assert serve_config["http_options"]["host"] == "127.0.0.1"


@pytest.mark.parametrize("breakage, message", [
    (lambda c: _dep(c, "orchestrator").update(num_replica=2), "unknown keys"),
    (lambda c: _dep(c, "ranker")["ray_actor_options"].update(num_cpu=1), "unknown ray_actor_options"),
    (lambda c: _dep(c, "ranker")["ray_actor_options"].update(num_cpus=-1), "num_cpus"),
    (lambda c: _dep(c, "retriever-lexical").update(num_replicas=1), "num_replicas is not allowed"),
    (lambda c: c["applications"][0]["deployments"].append(
        {"name": "retriever-bogus", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}}),
     "not one the app builder creates"),
    (lambda c: c["applications"][0]["deployments"].pop(), "built but not configured"),
    (lambda c: _dep(c, "retriever-memory").pop("num_replicas"), "neither num_replicas nor autoscaling"),
    (lambda c: _dep(c, "retriever-dense")["ray_actor_options"].update(num_cpus=1.5), "CPUs >"),
    (lambda c: c["applications"][0]["args"].update(index_dirr="x"), "index_dirr"),
    (lambda c: c.update(proxy_location="Nowhere"), "proxy_location"),
], ids=["unknown-deployment-key", "unknown-actor-option", "negative-cpus", "replicas-and-autoscaling", "unknown-deployment",
        "unconfigured-deployment", "retriever-without-replicas", "over-cpu-budget", "unknown-app-arg",
        "bad-proxy-location"])
def test_broken_serve_config_is_rejected(serve_config, breakage, message):
    broken = copy.deepcopy(serve_config)
    breakage(broken)
    with pytest.raises(ValueError, match=message):
        check_serve_config(broken)


def test_every_queue_is_bounded_and_sheds_with_retry_after(serve_config):
    """Load shedding: every deployment the builder creates has a finite max_queued_requests and
    answers past it with the configured status and Retry-After (deployments/config.py)."""
    args = serve_config["applications"][0]["args"]
    built = _built_deployments(args)
    shed = AppArgs.model_validate(args).load_shedding
    for name, dep in built.items():
        assert dep.max_queued_requests >= 1, f"{name}: unbounded queue"
        bp = dep._deployment_config.backpressure_config
        assert (bp.status_code, bp.retry_after_s) == (shed.status_code, shed.retry_after_s), name
    assert built["orchestrator"].max_queued_requests == shed.orchestrator_max_queued
    assert built["retriever-dense"].max_queued_requests == shed.retriever_max_queued
    tight = _built_deployments({**args, "load_shedding": {"orchestrator_max_queued": 3, "status_code": 429}})
    assert tight["orchestrator"].max_queued_requests == 3
    assert tight["ranker"]._deployment_config.backpressure_config.status_code == 429
    for bad in ({"orchestrator_max_queued": 0}, {"status_code": 500}, {"retry_after": 1}):
        with pytest.raises(ValueError):
            AppArgs.model_validate({**args, "load_shedding": bad})


# ---------------------------------------------------------------------- k8s/rayservice.yaml

def test_rayservice_embeds_the_same_serve_config(manifest, serve_config):
    check_rayservice_matches(manifest, serve_config)
    k8s = rayservice_serve_config(manifest)
    assert k8s["applications"][0]["args"]["index_dir"] == "/app/indexes/music-demo"
    assert k8s["applications"][0]["args"]["state_dir"] == "/app/state"


def test_rayservice_cluster_fits_the_minimum_replicas(manifest):
    offered = check_ray_cluster_spec(manifest)
    plan = check_serve_config(rayservice_serve_config(manifest))
    needed = sum(c * lo for c, lo, _ in plan.values())
    assert needed <= offered, f"minimum replicas need {needed} CPUs, the minimum cluster offers {offered}"
    assert manifest["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__


@pytest.mark.parametrize("breakage, message", [
    (lambda k: _dep(k, "retriever-dense")["ray_actor_options"].update(num_cpus=0.25), "drifted"),
    (lambda k: _dep(k, "retriever-lexical")["autoscaling_config"].update(max_replicas=4), "drifted"),
    (lambda k: k["applications"][0]["args"].update(feedback_shards=3), "app args drifted"),
    (lambda k: k["applications"][0]["args"].update(state_dir="state"), "absolute"),
    (lambda k: _dep(k, "ranker").update(bogus=1), "unknown keys"),
], ids=["cpu-drift", "autoscaling-drift", "args-drift", "relative-path", "unknown-key"])
def test_drifted_rayservice_is_rejected(manifest, serve_config, breakage, message):
    k8s = rayservice_serve_config(manifest)
    breakage(k8s)
    broken = copy.deepcopy(manifest)
    broken["spec"]["serveConfigV2"] = yaml.safe_dump(k8s, sort_keys=False)
    with pytest.raises(ValueError, match=message):
        check_rayservice_matches(broken, serve_config)


def test_malformed_rayservice_is_rejected(manifest, serve_config):
    as_mapping = copy.deepcopy(manifest)
    as_mapping["spec"]["serveConfigV2"] = rayservice_serve_config(manifest)
    with pytest.raises(TypeError, match="YAML string"):
        check_rayservice_matches(as_mapping, serve_config)
    int_params = copy.deepcopy(manifest)
    int_params["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    with pytest.raises(ValueError, match="must be strings"):
        check_ray_cluster_spec(int_params)


# ------------------------------------------------------------------------------ cluster.yaml

def test_cluster_config_passes_ray_up_validation(cluster):
    prepared = check_cluster_config(cluster)
    assert prepared["provider"]["type"] == "local"
    node = prepared["available_node_types"][prepared["head_node_type"]]
    assert node["min_workers"] == node["max_workers"] == len(cluster["provider"]["worker_ips"])


def test_cluster_config_installs_indexes_and_deploys_consistently(cluster, serve_config):
    assert cluster["file_mounts"] == {"~/ltrr": "."}
    setup = cluster["setup_commands"]
    assert any("bash scripts/install.sh" in c for c in setup)
    index_cmd = next(c for c in setup if "ltrr index" in c)
    index_dir = re.search(r"--out (\S+)", index_cmd).group(1)
    (render,) = [c for c in cluster["head_setup_commands"] if "render_config" in c]
    start = " ".join(cluster["head_start_ray_commands"])
    deployed = re.search(r"serve deploy (\S+)", start).group(1)
    # The rendered config points at the index the setup step built, and it is the one deployed.
    assert f"index_dir=p('{index_dir}')" in render
    assert f"p('{deployed}')" in render and deployed != "~/ltrr/serve_config.yaml"
    assert "p('~/ltrr/serve_config.yaml')" in render
    assert serve_config["applications"][0]["args"]["index_dir"] == "indexes/music-demo"
    assert "--dashboard-host=127.0.0.1" in start and "ray start --head" in start
    assert "127.0.0.1:8265" in start


def test_every_way_to_start_ray_sets_the_serve_throughput_options(cluster, manifest):
    """`ltrr up`, `ray up cluster.yaml` (head and workers) and the KubeRay pods all start Ray
    with deployments.cluster.SERVE_ENV, so every deployment path serves as measured."""
    from deployments.cluster import SERVE_ENV

    for cmds in (cluster["head_start_ray_commands"], cluster["worker_start_ray_commands"]):
        (start,) = [c for c in cmds if "ray start" in c]
        assert all(f"{k}={v} " in start for k, v in SERVE_ENV.items()), start
    spec = manifest["spec"]["rayClusterConfig"]
    pods = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
    for pod in pods:
        (container,) = pod["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert {k: env.get(k) for k in SERVE_ENV} == SERVE_ENV, container["name"]


def test_ray_running_asks_the_recorded_gcs_address(tmp_path, monkeypatch):
    """`ltrr up` and `ltrr down` find a running cluster where `ray status` would: RAY_ADDRESS,
    else the address in <ray temp dir>/ray_current_cluster, answered or not."""
    import socket

    from deployments.cluster import ray_running

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert not ray_running()  # nothing recorded
    (tmp_path / "ray").mkdir()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")
        assert ray_running()
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # the environment wins over the record
        assert not ray_running()
        monkeypatch.delenv("RAY_ADDRESS")
    assert not ray_running()  # recorded, but nothing answers there any more


@pytest.mark.parametrize("name,cmdline,alive", [
    ("raylet", ["/x/raylet", "--node_id=1"], True),
    ("ray::ServeRepli", ["ray::ServeReplica:ltrr:ranker"], True),
    ("python", ["/x/python", "/x/ray/_private/workers/default_worker.py", "--node-ip-address=1"], True),
    ("gcs_server", ["/x/gcs_server"], True),
    ("python", ["/x/python", "-m", "pytest", "tests/live"], False),
    ("bash", ["bash", "-c", "echo raylet"], False),  # a name keyword counts in the name only
])
def test_ray_processes_alive_matches_as_ray_stop_does(monkeypatch, name, cmdline, alive):
    """`ltrr down` runs `ray stop` only when a process of Ray's own list is alive."""
    import psutil

    from deployments.cluster import ray_processes_alive

    class Proc:
        info = {"name": name, "cmdline": cmdline}

    monkeypatch.setattr(psutil, "process_iter", lambda attrs=None: iter([Proc()]))
    assert ray_processes_alive() is alive


def test_aws_variant_in_comments_validates(cluster, cluster_text):
    aws = aws_variant(cluster_text)
    assert aws["provider"]["type"] == "aws" and aws["provider"]["region"]
    assert aws["head_node_type"] in aws["available_node_types"]
    prepared = check_cluster_config(apply_aws(cluster, aws))
    assert prepared["provider"]["type"] == "aws"
    assert {t["node_config"]["InstanceType"] for t in prepared["available_node_types"].values()}
    assert prepared["setup_commands"] == cluster["setup_commands"]


def test_broken_cluster_configs_are_rejected(cluster, cluster_text):
    prepared = check_cluster_config(cluster)
    no_type = copy.deepcopy(prepared)
    del no_type["provider"]["type"]
    with pytest.raises(jsonschema.ValidationError, match="'type' is a required property"):
        validate_config(no_type)
    typo = copy.deepcopy(cluster)
    typo["setup_command"] = typo.pop("setup_commands")
    with pytest.raises(jsonschema.ValidationError, match="setup_command"):
        check_cluster_config(typo)
    aws = aws_variant(cluster_text)
    aws["head_node_type"] = "ray.head.missing"
    with pytest.raises(ValueError, match="head_node_type"):
        check_cluster_config(apply_aws(cluster, aws))
    aws = aws_variant(cluster_text)
    aws["available_node_types"]["ray.worker.default"]["resources"] = {"CPU": 0.5}
    with pytest.raises(jsonschema.ValidationError):
        check_cluster_config(apply_aws(cluster, aws))


def test_no_ray_was_started():
    assert not ray.is_initialized()
