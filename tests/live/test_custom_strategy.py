"""A user strategy registered by import path: the external-HTTP example
(retrievers/http_search.py) against a local stub of an Elasticsearch-style `_search`
service. It is deployed as retriever-http, called by the plan, named when it fails,
counted in /stats and the Prometheus metrics, and scaled with `ltrr scale http`.

Lean on purpose: its own small app (popularity, structured and http over the shared
600-track demo index, so only three strategy replicas start).
"""
from __future__ import annotations

import time

import httpx
import pytest
import yaml

from core.paths import METRICS_PORT, SERVE_CONFIG_TEMPLATE
from ingest.registry import load_dataset
from tests.helpers.search_stub import SearchStub
from tests.helpers.service import DEMO_600, ltrr

PORT = 8124
BASE = f"http://127.0.0.1:{PORT}"
KEEP = ("orchestrator", "ranker", "retriever-popularity", "retriever-structured")


@pytest.fixture(scope="module")
def service(tmp_path_factory, demo_index):
    root = tmp_path_factory.mktemp("custom")
    ds = load_dataset(DEMO_600)
    with SearchStub(ds.items) as stub:
        config = yaml.safe_load(SERVE_CONFIG_TEMPLATE.read_text())
        app = config["applications"][0]
        app["args"]["strategies"] = ["popularity", "structured"]
        app["args"]["custom_strategies"] = {"http": {"import_path": "retrievers.http_search:HttpSearchRetriever",
                                                     "args": {"url": stub.url, "timeout_s": 0.5, "name": "http"}}}
        app["args"]["policy"].update(budgets={"popularity": 10, "structured": 25, "http": 25}, epsilon=0.0,
                                     shadow_share=0.0)
        app["deployments"] = [d for d in app["deployments"] if d["name"] in KEEP] + [
            {"name": "retriever-http", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}}]
        template = root / "serve_config.yaml"
        template.write_text(yaml.safe_dump(config, sort_keys=False))
        ltrr("down")
        up = ltrr("up", "--dataset", DEMO_600, "--index", str(demo_index), "--state", str(root / "state"),
                  "--port", str(PORT), "--config", str(template))
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            with httpx.Client(base_url=BASE, timeout=60) as client:
                yield {"stub": stub, "client": client, "state": root / "state", "dataset": ds}
        finally:
            ltrr("down")


def test_served_called_and_merged(service):
    client, stub, ds = service["client"], service["stub"], service["dataset"]
    strategies = {s["name"]: s for s in client.get("/strategies").json()}
    assert set(strategies) == {"popularity", "structured", "http"}
    assert strategies["http"]["deployment"] == "retriever-http" and strategies["http"]["replicas"] == 1
    item = max(ds.items, key=lambda it: it.popularity)
    before = stub.requests
    for _ in range(5):
        body = client.post("/search", json={"query": f"{item.fields['title']} {item.fields['artist']}",
                                            "k": 10}).json()
        assert body["plan"]["budgets"]["http"] == 25 and not body["degraded"], body
    assert stub.requests >= before + 5
    found = {s for r in body["results"] for s in r["strategies"]}
    assert "http" in found and item.id in [r["item_id"] for r in body["results"][:3]]
    stats = client.get("/stats").json()["strategies"]["http"]
    assert stats["chosen"] >= 5 and stats["fetched"] >= 5


def test_a_failing_service_degrades_the_answer(service):
    client, stub = service["client"], service["stub"]
    stub.fail = True
    try:
        body = client.post("/search", json={"query": "chill jazz", "k": 5}).json()
        assert body["degraded"] and body["failed_strategies"] == ["http"] and body["results"]
    finally:
        stub.fail = False


def test_measured_in_prometheus(service):
    deadline, text = time.monotonic() + 120, ""
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=30).text
        if 'ray_ltrr_strategy_latency_ms_bucket' in text and 'strategy="http"' in text:
            break
        time.sleep(3)
    lines = [ln for ln in text.splitlines() if ln.startswith("ray_ltrr_strategy_") and 'strategy="http"' in ln]
    assert any(ln.startswith("ray_ltrr_strategy_chosen") for ln in lines), lines
    assert any(ln.startswith("ray_ltrr_strategy_latency_ms") for ln in lines), lines


def test_scaled_with_ltrr_scale(service):
    client = service["client"]
    proc = ltrr("scale", "http", "--replicas", "2", "--state", str(service["state"]), "--port", str(PORT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline, http = time.monotonic() + 120, {}
    while time.monotonic() < deadline:
        http = next(s for s in client.get("/strategies").json() if s["name"] == "http")
        if http["replicas"] == 2:
            break
        time.sleep(1)
    assert http["replicas"] == 2
    assert client.post("/search", json={"query": "chill jazz", "k": 5}).status_code == 200
