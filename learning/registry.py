"""Promotion history of the served models: which version served before which, and why.

Every promotion (retrain, `train-ranker --promote`, rollback) appends one JSON line to
`<state>/models/<kind>/history.jsonl` (`core.paths.StatePaths.history`):
`{"version", "previous", "ts", "reason"}`. A rollback serves the `previous` of the
newest promotion of the version serving now.
"""
from __future__ import annotations

import json
import os
import time

from core.paths import ModelKind, StatePaths


def history(paths: StatePaths, kind: ModelKind) -> list[dict]:
    """Every recorded promotion of `kind`, oldest first."""
    f = paths.history(kind)
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []


def record_promotion(paths: StatePaths, kind: ModelKind, version: str, previous: str, reason: str) -> dict:
    """Append one promotion to the history, durably (fsync), and return it."""
    row = {"version": version, "previous": previous, "ts": time.time(), "reason": reason}
    f = paths.history(kind)
    f.parent.mkdir(parents=True, exist_ok=True)
    with f.open("a") as out:
        out.write(json.dumps(row) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return row


def previous_of(paths: StatePaths, kind: ModelKind, current: str) -> str:
    """The version that served before `current`; ValueError when none is recorded."""
    rows = [h for h in history(paths, kind) if h["version"] == current]
    if not rows:
        raise ValueError(f"no promotion of the serving {kind} version {current!r} in {paths.history(kind)}: "
                         "nothing to roll back to")
    return rows[-1]["previous"] or ("fixed" if kind == "bandit" else "latest")
