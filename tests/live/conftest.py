"""The live tier's shared service: one `ltrr up` of the 600-track music-demo (conftest's
`demo_index`) on port `DEMO_PORT`, used by test_serve and then test_serve_resilience (the
destructive one: crashes, floods, and it leaves the queues tightened).

Why shared: on 2 cores a cluster's life costs about a minute (ray start 8 s, `serve deploy`
and eight replicas 25-30 s, `ltrr down` 16 s), and the two modules need the same app. It
starts on first use and stops as soon as the next test does not use it (`pytest_runtest_teardown`),
so the modules after them (test_sharding) start their own clusters on a quiet machine; a
module that uses it again later would start it afresh. Each module gets its own copy of the
service's description (tests record things in it). Its processes export metrics every
`METRICS_REPORT_S` (2 s, not Ray's 10 s), so tests that read Prometheus counters wait less."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.registry import load_dataset
from tests.helpers.service import DEMO_600, DEMO_PORT, FAST_METRICS, ltrr

USES = "demo_service"


class _Shared:
    """The running shared service (or none), started and stopped outside pytest's fixture cache."""

    info: dict | None = None
    starting = False  # set before `ltrr up`, so an interrupted start is stopped too

    @classmethod
    def start(cls, root: Path, index: Path) -> dict:
        if cls.info is None:
            ltrr("down")
            cls.starting = True
            state = root / "state"
            up = ltrr("up", "--dataset", DEMO_600, "--index", str(index), "--state", str(state),
                      "--port", str(DEMO_PORT), env=FAST_METRICS)
            if up.returncode != 0:
                ltrr("down")
                pytest.fail(f"ltrr up failed:\n{up.stdout[-3000:]}\n{up.stderr[-5000:]}")
            cls.info = {"index": index, "state": state, "root": root, "port": DEMO_PORT,
                        "dataset": load_dataset(DEMO_600)}
        return cls.info

    @classmethod
    def stop(cls) -> None:
        if cls.info is not None or cls.starting:
            cls.info, cls.starting = None, False
            ltrr("down")


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory, demo_index) -> dict:
    """The shared service's description (index, state and root directories, port, dataset),
    a copy per module. Modules that use it mark every test with it
    (`pytestmark = pytest.mark.usefixtures("demo_service")`), so it is never stopped mid-module."""
    if _Shared.info is None:
        _Shared.start(tmp_path_factory.mktemp("demo-service"), demo_index)
    return dict(_Shared.info)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    try:
        return (yield)  # first the test's own teardown (module fixtures: drivers, clients)
    finally:  # even if that teardown failed
        if USES in getattr(item, "fixturenames", ()) and USES not in getattr(nextitem, "fixturenames", ()):
            _Shared.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _Shared.stop()  # an interrupted run still stops the cluster it started
