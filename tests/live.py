"""Helpers for tests that run the real service: the `ltrr` command line, and Serve's view
of the deployed app through the dashboard's REST API."""
from __future__ import annotations

import subprocess
import sys
import time

import httpx

DEMO_600 = "builtin:music-demo?n_tracks=600"
DASHBOARD = "http://127.0.0.1:8265"


def ltrr(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ltrr.cli", *args], capture_output=True, text=True, timeout=timeout)


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
