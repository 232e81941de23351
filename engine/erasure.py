"""Erasing a user from one feedback shard's files, durably and crash-safely.

A user's data in a shard is every request record with their `user_id` and every event on
those requests. `erase_user_files` rewrites `events.jsonl`, then `requests.jsonl`, each
into a temporary file that is fsynced and renamed over the old one (then the directory
is fsynced), so at every instant each file is either the old one or the new one, whole.

Crash safety: the erasure is first recorded in `erasures.pending` (fsynced), and that
record is dropped only after both files are rewritten. A shard that starts with pending
erasures runs them again before it replays its files (`resume_pending`). Running one
again is harmless: events go first because they are found through their requests, so
after a crash between the two renames the user's requests are still there to find the
rest by. Each erasure also advances the shard's `epoch` (a file), which tells readers of
memory updates (whose sequence numbers are line numbers of `events.jsonl`) to start over.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

PENDING, EPOCH = "erasures.pending", "epoch"


class EraseCounts(BaseModel):
    """What one shard erased."""

    shard: int
    requests: int = Field(description="request records of the user removed")
    events: int = Field(description="events on those requests removed")
    epoch: int = Field(description="the shard's epoch after the erasure")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(target: Path, lines: Iterable[bytes]) -> None:
    """Replace `target` by these lines: temporary file, fsync, rename, fsync of the directory."""
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        for line in lines:
            f.write(line)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def read_epoch(shard_dir: Path) -> int:
    f = shard_dir / EPOCH
    return int(f.read_text().strip() or 0) if f.exists() else 0


def _lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [line for line in f if line.endswith(b"\n")]  # a torn tail is dropped, as replay would


def _field(line: bytes, name: str) -> object:
    try:
        return json.loads(line).get(name)
    except (ValueError, AttributeError):
        return None


def erase_user_files(shard_dir: Path, requests: str, events: str, user_id: str) -> tuple[int, int]:
    """Rewrite the shard's files without `user_id`'s requests and their events; (requests, events) removed."""
    req_lines = _lines(shard_dir / requests)
    erased = {_field(line, "request_id") for line in req_lines if _field(line, "user_id") == user_id}
    if not erased:
        return 0, 0
    ev_lines = _lines(shard_dir / events)
    kept_events = [line for line in ev_lines if _field(line, "request_id") not in erased]
    write_atomic(shard_dir / events, kept_events)  # first: events are found through their requests
    write_atomic(shard_dir / requests, [line for line in req_lines if _field(line, "request_id") not in erased])
    return len(erased), len(ev_lines) - len(kept_events)


def record_pending(shard_dir: Path, user_id: str) -> None:
    with open(shard_dir / PENDING, "ab") as f:
        f.write(json.dumps({"user_id": user_id}).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(shard_dir)


def pending(shard_dir: Path) -> list[str]:
    return [u for u in (_field(line, "user_id") for line in _lines(shard_dir / PENDING)) if isinstance(u, str)]


def finish(shard_dir: Path) -> int:
    """Advance the epoch, then drop the pending record; returns the new epoch."""
    epoch = read_epoch(shard_dir) + 1
    write_atomic(shard_dir / EPOCH, [f"{epoch}\n".encode()])
    (shard_dir / PENDING).unlink(missing_ok=True)
    fsync_dir(shard_dir)
    return epoch


def resume_pending(shard_dir: Path, requests: str, events: str) -> list[str]:
    """Run again the erasures a crash interrupted (before the shard replays its files)."""
    users = pending(shard_dir)
    for user_id in users:
        erase_user_files(shard_dir, requests, events, user_id)
    if users:
        finish(shard_dir)
    return users
