"""Process environment that ltrr's entry points set up before they start or reach Ray.

Importing any ltrr package changes nothing in the environment; the command line
(`ltrr.cli.main`), the retraining job's entry point (`deployments.jobs.main`), the test
suite and the benchmark scripts call `configure()` first.

Ray authentication: Ray 2.60 turns token authentication on for every new local
`ray.init()` cluster and writes `~/.ray/auth_token`; from then on a `ray start` on the
same machine demands that token from `serve deploy`, the Jobs API client and drivers,
unless they all carry it. ltrr's clusters bind HTTP and the dashboard to 127.0.0.1
(`deployments.cluster`) and its processes must agree on one mode, so ltrr runs with
`RAY_AUTH_MODE=disabled` unless you set it. To run with token authentication, export
`RAY_AUTH_MODE=token` (and give clients the token).
"""
from __future__ import annotations

import os

DEFAULTS: dict[str, str] = {"RAY_AUTH_MODE": "disabled"}


def configure() -> dict[str, str]:
    """Set ltrr's environment defaults in this process (values already set win) and
    return the environment that child processes should get."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    return dict(os.environ)
