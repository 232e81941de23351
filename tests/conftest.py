"""Shared pytest fixtures and the test tiers.

Tiers are directories, and each test gets its tier's marker from where it lives:
- `tests/unit` (`-m unit`): no Ray, no JVM, no real data; seconds (`make test-unit`);
- `tests/integration` (`-m integration`): real data, the JVM (Lucene), faiss and torch;
- `tests/live` (`-m live`): real Ray clusters, Serve deployments over HTTP, the bench.
`make test` (and so CI) runs every tier.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.env import configure

TIERS = ("unit", "integration", "live")

configure()  # the environment every ltrr entry point sets up (Ray's auth mode), for tests that start Ray


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        tier = next((t for t in TIERS if t in parts), None)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/unit, tests/integration or tests/live")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real-data root named by LTRR_DATA (e.g. ../shared/data).

    Unset: the test is skipped (real data is optional on a developer machine).
    Set but missing: the test FAILS, because someone asked for real data and would
    otherwise get a silent green run that tested nothing."""
    raw = os.environ.get("LTRR_DATA", "").strip()
    if not raw:
        pytest.skip("LTRR_DATA is not set; set it to the real-data root (e.g. ../shared/data) to run this test")
    root = Path(raw).expanduser()
    if not root.is_dir():
        pytest.fail(f"LTRR_DATA={raw!r} is not a directory (resolved to {root.resolve()}); "
                    f"fix the path or unset LTRR_DATA to skip real-data tests")
    return root


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory) -> Path:
    """Every strategy's index of the 600-track music-demo, built once per session in a
    subprocess (the JVM and torch stay out of pytest) and shared, read only, by the tests
    that run the service (test_serve, test_serve_resilience, test_custom_strategy, test_multinode)."""
    from tests.helpers.service import DEMO_600, built_index

    return built_index(DEMO_600, tmp_path_factory.mktemp("demo-index") / "index")
