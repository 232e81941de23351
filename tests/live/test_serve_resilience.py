"""The live service under bad input, crashes and floods: `ltrr up` on a 600-track
music-demo, real Serve deployments, real HTTP; the service test_serve used just before
(tests/live/conftest.py), so these tests also meet a service with history.

1. Schemathesis generates valid and invalid requests from /openapi.json for every
   endpoint (admin ones without a token), half of them with text of any code point
   swapped into their strings: none may answer 5xx. A hypothesis property test sends raw
   JSON text with every escape form, lone surrogates, NaN/Infinity and odd numbers in
   every field of /search and /feedback; then the stored records must export and train.
2. `benchmarks/load_faults.py`, short: searches and feedback at a steady rate while a
   dense replica, the ranker and a feedback actor are SIGKILLed: no 500s, no request
   without an answer, every crashed part serves again, acknowledged == stored events.
3. A flood after tightening the queues (a Serve update of the rendered config): the proxy
   sheds with 503 + Retry-After, the orchestrator sheds requests no strategy could take
   (back-pressure on the strategies' handles), nothing is a 500, and the service answers
   200 again afterwards. Then a /feedback flood: the orchestrator sheds past 2 calls waiting
   on the feedback actors (503 + Retry-After), and the events acknowledged equal the
   events stored.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from core.paths import StatePaths
from tests.helpers.hostile_json import KINDS, accepted_search_body, feedback_body, json_string, search_body
from tests.helpers.service import DEMO_600, DEMO_PORT, ltrr, wait_for_app

PORT = DEMO_PORT
BASE = f"http://127.0.0.1:{PORT}"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("demo_service")


@pytest.fixture(scope="module")
def service(demo_service):
    """`ltrr up` on the 600-track demo, shared with test_serve (tests/live/conftest.py)."""
    return demo_service


@pytest.fixture(scope="module")
def request_id(service) -> str:
    r = httpx.post(f"{BASE}/search", json={"query": "chill jazz", "k": 10}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["request_id"]


MAX_EXAMPLES = 50  # per operation and generation mode: about 600 requests, some 15 s
# every code point, lone surrogates included (hypothesis' default text leaves them out)
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None), max_size=40)


def _hostile(value, data):
    """`value` with some of its strings replaced by text of any code points (Schemathesis' own
    strings cover only part of what a JSON string may hold)."""
    if isinstance(value, str):
        return data.draw(ANY_TEXT) if data.draw(st.booleans()) else value
    if isinstance(value, dict):
        return {k: _hostile(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v, data) for v in value]
    return value


def test_no_generated_request_is_a_server_error(service, request_id):
    """Schemathesis replays the OpenAPI examples and generates valid and invalid paths, headers
    and bodies for every operation of /openapi.json (admin ones without a token): each answer
    must pass `not_a_server_error`. Half of the generated feedback quotes a real request_id, so
    events reach a feedback actor. (Schemathesis' own pytest loader does not run on pytest 9,
    hence plain hypothesis here.)"""
    schema = schemathesis.openapi.from_url(f"{BASE}/openapi.json", timeout=30)
    session = requests.Session()
    tested: Counter = Counter()
    failures: list[str] = []

    def run(op, strategy, max_examples: int) -> None:
        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy, data=st.data())
        def call(case, data) -> None:
            if isinstance(case.body, dict | list) and data.draw(st.booleans()):
                case.body = _hostile(case.body, data)
            if op.label == "POST /feedback" and isinstance(case.body, dict) and len(str(case.body)) % 2:
                case.body["request_id"] = request_id
            response = case.call(session=session, timeout=60)
            tested[f"{op.label} {response.status_code}"] += 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except (AssertionError, BaseExceptionGroup) as exc:  # collected, not raised: no shrinking
                failures.append(f"{op.label} -> {response.status_code}: {str(case.body)[:300]}: {exc}"[:1500])
        call()

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"POST /search", "POST /feedback", "POST /admin/retrain", "GET /admin/jobs/{job_id}"} <= {
        op.label for op in operations}
    examples = 0
    for op in operations:
        for strategy in schema.get_strategies_from_examples(op):
            run(op, strategy, 3)
            examples += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run(op, op.as_strategy(generation_mode=mode), MAX_EXAMPLES)
            except Unsatisfiable:  # no parameters to make invalid (GET /healthz): nothing to send
                assert mode == GenerationMode.NEGATIVE, op.label
    print(dict(sorted(tested.items())))
    assert not failures, "\n".join(failures[:10])
    assert examples >= 3, "the /search and /feedback examples of the OpenAPI document were not found"
    assert sum(n for k, n in tested.items() if k.startswith("POST /search 2")) > 0, "no valid search was generated"
    assert sum(n for k, n in tested.items() if k.startswith("POST /search 4")) > 0, "no invalid search was generated"


HOSTILE_EXAMPLES = 40  # examples: 80 searches and 40 feedback calls (plus clicks), about 15 s live


def test_hostile_json_is_never_a_server_error_and_later_exports_and_retrains(service, request_id):
    """Raw JSON text with every escape form, lone surrogates, NaN/Infinity, huge and odd numbers
    and nesting in every field (tests/helpers/hostile_json.py), sent to /search and /feedback
    of the live service: each answer is 2xx or a 4xx with a message. Each example sends one
    hostile search body and one the schema accepts (hostile text in every string), so that even
    a short run stores many of them (60 bodies of `search_body` alone once gave a single 200;
    drawing either kind with `one_of` made the mix follow hypothesis' seed, which follows the
    test's source: one edit gave 50 accepted and 10 rejected). Every accepted search gets
    a click whose event_id is hostile text too. Then what was stored must still export and
    train a ranker (`ltrr train-ranker --from clicks`, which exports the shards to Parquet)."""
    first = httpx.post(f"{BASE}/search", json={"query": "happy pop", "k": 10}, timeout=60).json()
    request_ids, items = [request_id, first["request_id"]], [r["item_id"] for r in first["results"]]
    statuses: Counter = Counter()
    failures: list[str] = []
    accepted: list[str] = []
    clicks = itertools.count()

    words = ["chill jazz", "sad rock", "relaxing music with sax"]

    @settings(max_examples=HOSTILE_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(search=search_body(words), valid=accepted_search_body(words),
           fb=feedback_body(request_ids, items), click_id=json_string(min_size=1))
    def call(search, valid, fb, click_id) -> None:
        with httpx.Client(base_url=BASE, timeout=60) as client:
            for path, body in (("/search", search), ("/search", valid), ("/feedback", fb)):
                json.loads(body)
                r = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
                statuses[f"{path} {r.status_code}"] += 1
                if r.status_code >= 500 or r.status_code not in (200, 202, 400, 404, 413, 422) or not (
                        r.json().get("detail") if r.status_code >= 400 else True):
                    failures.append(f"{path} {r.status_code}: {body[:300]!r}: {r.text[:300]}")
                elif path == "/search" and r.status_code == 200 and r.json()["results"]:
                    ans = r.json()
                    rid, item = json.dumps(ans["request_id"]), json.dumps(ans["results"][0]["item_id"])
                    # hostile text after a unique prefix: hypothesis repeats ids ("0"), and a
                    # repeated event_id is a duplicate, acknowledged but not stored again
                    unique_id = f'"c{next(clicks)}-' + click_id[1:]
                    ev = (f'{{"request_id":{rid},"events":[{{"event_id":{unique_id},"item_id":{item},'
                          '"type":"click","position":1}]}')
                    fr = client.post("/feedback", content=ev.encode(), headers={"content-type": "application/json"})
                    statuses[f"/feedback (click) {fr.status_code}"] += 1
                    if fr.status_code not in (202, 422):  # 422: an event_id that is blank, too long or unencodable
                        failures.append(f"click {fr.status_code}: {ev[:300]!r}: {fr.text[:300]}")
                    elif fr.status_code == 202 and fr.json()["accepted"] == 1:
                        accepted.append(ans["request_id"])
    call()
    print(dict(sorted(statuses.items())), "kinds:", ", ".join(KINDS))
    assert not failures, "\n".join(failures[:10])
    assert statuses["/search 200"] > 10 and statuses["/search 422"] > 10, statuses
    assert statuses["/feedback 202"] + len(accepted) > 10 and statuses["/feedback 422"] > 10, statuses
    trained = ltrr("train-ranker", "--index", str(service["index"]), "--from", "clicks", "--state",
                   str(service["state"]), "--port", str(PORT), "--shards", "2")
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    out = json.loads(trained.stdout.strip().splitlines()[-1])
    assert Path(out["dir"], "manifest.json").exists()


def test_oversized_bodies_are_413_before_parsing(service):
    big = json.dumps({"query": "jazz", "context": {f"k{i}": "x" * 200 for i in range(400)}}).encode()
    assert len(big) > 65536
    declared = httpx.post(f"{BASE}/search", content=big, headers={"content-type": "application/json"}, timeout=60)
    assert declared.status_code == 413 and "65536" in declared.json()["detail"]

    def chunks():  # no Content-Length: counted while it arrives
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]
    chunked = httpx.post(f"{BASE}/feedback", content=chunks(), headers={"content-type": "application/json"},
                         timeout=60)
    assert chunked.status_code == 413, chunked.text
    small = httpx.post(f"{BASE}/search", json={"query": "jazz", "k": 3}, timeout=60)
    assert small.status_code == 200


def test_load_with_crashes_loses_nothing(service, tmp_path):
    out = tmp_path / "load_faults"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load_faults.py"), "--duration", "24",
                           "--rate", "6", "--port", str(PORT), "--dataset", DEMO_600, "--recovery-timeout", "60",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))
    assert [f["kind"] for f in result["faults"]] == ["retriever", "ranker", "feedback"]
    assert all(f["pid"] > 0 for f in result["faults"])
    statuses = {f"{ep} {s}" for ep, by in result["statuses"].items() for s in by}
    assert not {s for s in statuses if s.split()[1] not in ("200", "202", "503", "429")}, result["statuses"]
    assert result["errors"] == 0
    for f in result["faults"]:  # a request sent after each crash was served by the crashed part again
        assert f["recovered_s"] is not None, f
    ev = result["feedback_events"]
    assert ev["acked"] > 0 and ev["acked"] == ev["stored"], ev
    assert result["rate_held"] >= 0.9 * 6
    assert proc.returncode == 0 and result["ok"]
    assert out.with_suffix(".md").read_text().startswith("# Load with faults")


TIGHT = {"orchestrator": {"max_ongoing_requests": 8, "max_queued_requests": 4}}
TIGHT.update({f"retriever-{s}": {"max_ongoing_requests": 1, "max_queued_requests": 1}
              for s in ("lexical", "dense", "memory", "popularity", "structured", "explore")})


async def _flood(n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=BASE, timeout=120, limits=limits) as client:
        return await asyncio.gather(*[client.post("/search", json={"query": q, "k": 5})
                                      for q in ["relaxing music with sax", "chill jazz", "happy pop"] * (n // 3)])


def test_flood_is_shed_with_retry_after_and_the_service_recovers(service):
    """Leaves the shared service's queues tightened: the last test of the last module using it."""
    from deployments.cluster import deploy

    rendered = StatePaths(service["state"]).serve_config
    config = yaml.safe_load(rendered.read_text())
    for dep in config["applications"][0]["deployments"]:
        dep.update(TIGHT.get(dep["name"], {}))
    config["applications"][0]["args"].setdefault("load_shedding", {})["feedback_max_in_flight"] = 2
    rendered.write_text(yaml.safe_dump(config, sort_keys=False))
    deploy(rendered)  # max_ongoing/max_queued_requests are updated in place: no replica restarts

    def applied(app: dict) -> bool:
        deps = app.get("deployments", {})
        return all(deps.get(n, {}).get("deployment_config", {}).get("max_queued_requests") == c["max_queued_requests"]
                   and deps[n].get("status") == "HEALTHY" for n, c in TIGHT.items())
    wait_for_app(applied, "the tightened queues")

    seen: Counter = Counter()
    for _ in range(3):  # the proxy's and the orchestrator's routers learn the new limits asynchronously
        for r in asyncio.run(_flood(150)):
            kind = ("proxy" if "backpressure" in r.text else "orchestrator") if r.status_code in (503, 429) else ""
            seen[f"{r.status_code} {kind}".strip()] += 1
            assert r.status_code in (200, 503), (r.status_code, r.text[:300])
            if r.status_code == 503:
                assert int(r.headers["retry-after"]) >= 1, r.headers
            if kind == "orchestrator":
                assert "retry later" in r.json()["detail"]
        if seen["503 proxy"] and seen["503 orchestrator"]:
            break
    print(dict(seen))
    assert seen["503 proxy"] > 0, f"the proxy never shed: {dict(seen)}"
    assert seen["503 orchestrator"] > 0, f"strategy back-pressure never became a 503: {dict(seen)}"
    assert seen["200"] > 0
    ok = httpx.post(f"{BASE}/search", json={"query": "chill jazz", "k": 5}, timeout=60)
    assert ok.status_code == 200 and ok.json()["results"], ok.text

    # /feedback: past 2 calls waiting on the actors the orchestrator sheds too; what it acked is stored
    target = {"request_id": ok.json()["request_id"], "item_id": ok.json()["results"][0]["item_id"]}
    before = httpx.get(f"{BASE}/stats", timeout=60).json()["events"]
    shed: Counter = Counter()
    acked = 0
    for _ in range(3):
        for r in asyncio.run(_feedback_flood(150, target)):
            kind = "feedback" if "feedback store" in r.text else ("proxy" if "backpressure" in r.text else "")
            shed[f"{r.status_code} {kind}".strip()] += 1
            assert r.status_code in (202, 503), (r.status_code, r.text[:300])
            if r.status_code == 503:
                assert int(r.headers["retry-after"]) >= 1, r.headers
            else:
                acked += r.json()["accepted"] + r.json()["duplicates"]
        if shed["503 feedback"]:
            break
    print(dict(shed))
    assert shed["503 feedback"] > 0, f"/feedback was never shed by the orchestrator: {dict(shed)}"
    assert shed["202"] > 0 and acked == shed["202"]
    assert httpx.get(f"{BASE}/stats", timeout=60).json()["events"] - before == acked


async def _feedback_flood(n: int, target: dict) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=BASE, timeout=120, limits=limits) as client:
        return await asyncio.gather(*[client.post("/feedback", json={
            "request_id": target["request_id"], "events": [{"event_id": uuid.uuid4().hex, "item_id": target["item_id"],
                                                            "type": "click", "position": 1}]}) for _ in range(n)])
