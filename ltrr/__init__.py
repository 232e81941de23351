"""ltrr: learning to rank and retrieve.

Ray authentication: Ray 2.60 turns token authentication on for every new local
`ray.init()` cluster and writes `~/.ray/auth_token`; from then on a `ray start` on the
same machine demands that token from `serve deploy`, the Jobs API client and drivers,
unless they all carry it. ltrr's clusters bind HTTP and the dashboard to 127.0.0.1
(see ltrr/cluster.py) and its processes must agree on one mode, so ltrr sets
`RAY_AUTH_MODE=disabled` for itself and its children unless you set it. To run with
token authentication, export `RAY_AUTH_MODE=token` (and give clients the token).
"""
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
