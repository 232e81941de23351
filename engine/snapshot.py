"""Snapshots of a feedback shard's in-memory state, so a restart replays only the log's tail.

A snapshot is the shard's state (known requests, seen event ids, aggregates, memory
updates) together with the byte offset and line count of each log file it covers, the
last bytes before each offset, the shard's epoch and a format version. It is written to
a temporary file, fsynced and renamed over `snapshot.pkl` (then the directory is
fsynced): a crash at any step leaves the old snapshot or the new one, whole.

On start the shard loads it only if everything still matches (same format version and
epoch, each file at least as long as its offset and ending there with the same bytes);
otherwise it replays the whole log, as before snapshots existed. An erasure removes the
snapshot before it rewrites the files. The files are the shard's own: it trusts them as
it trusts its logs.
"""
from __future__ import annotations

import gc
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.erasure import fsync_dir

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot.pkl"
FORMAT = 2  # bump when the pickled state changes shape (2: shown entities per request, entity events)
TAIL_BYTES = 64


@dataclass
class Snapshot:
    epoch: int
    offsets: dict[str, int]  # log file name -> bytes covered
    lines: dict[str, int]  # log file name -> lines covered
    tails: dict[str, bytes]  # log file name -> the TAIL_BYTES before its offset
    state: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT


def _tail(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, offset - TAIL_BYTES))
        return f.read(min(offset, TAIL_BYTES))


def take(shard_dir: Path, epoch: int, offsets: dict[str, int], lines: dict[str, int], state: dict[str, Any]) -> int:
    """Write a snapshot durably, in this process; returns its size in bytes."""
    return _write(shard_dir, Snapshot(epoch, dict(offsets), dict(lines),
                                      {name: _tail(shard_dir / name, off) for name, off in offsets.items()}, state))


def take_in_background(shard_dir: Path, epoch: int, offsets: dict[str, int], lines: dict[str, int],
                       state: dict[str, Any]) -> int:
    """Fork a child that writes the snapshot and exits; returns its pid (reap it with `done`).

    Pickling a large state takes seconds, and the shard answers nothing meanwhile; the fork
    takes milliseconds, and the child pickles the state as it was at the fork (its memory is
    a copy-on-write image of the parent's), as Redis' BGSAVE does. The child only pickles,
    writes and exits (`os._exit`): no logging, no imports, nothing that could wait on a lock
    another thread of the parent held at the fork."""
    snap = Snapshot(epoch, dict(offsets), dict(lines),
                    {name: _tail(shard_dir / name, off) for name, off in offsets.items()}, state)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            _write(shard_dir, snap)
            code = 0
        finally:
            os._exit(code)
    return pid


def done(pid: int, block: bool = False) -> bool | None:
    """None while the child runs; else whether it wrote its snapshot."""
    try:
        got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:  # already reaped
        return False
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(status) == 0


def _write(shard_dir: Path, snap: Snapshot) -> int:
    tmp = shard_dir / (SNAPSHOT + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(snap, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    os.replace(tmp, shard_dir / SNAPSHOT)
    fsync_dir(shard_dir)
    return size


def load(shard_dir: Path, epoch: int) -> Snapshot | None:
    """The snapshot, if it still describes a prefix of the shard's files (see the module docstring)."""
    path = shard_dir / SNAPSHOT
    if not path.exists():
        return None
    gc.disable()  # millions of small objects: the cyclic collector would run over them again and again
    try:
        with open(path, "rb") as f:
            snap = pickle.load(f)
    except Exception as exc:  # unreadable: replay the log instead
        log.warning("feedback snapshot %s is unreadable (%s); replaying the whole log", path, exc)
        return None
    finally:
        gc.enable()
    if not isinstance(snap, Snapshot) or snap.format != FORMAT or snap.epoch != epoch:
        log.warning("feedback snapshot %s is of another format or epoch; replaying the whole log", path)
        return None
    for name, off in snap.offsets.items():
        f = shard_dir / name
        if not f.exists() or f.stat().st_size < off or _tail(f, off) != snap.tails.get(name):
            log.warning("feedback snapshot %s does not match %s any more; replaying the whole log", path, name)
            return None
    return snap


def remove(shard_dir: Path) -> None:
    (shard_dir / SNAPSHOT).unlink(missing_ok=True)
    fsync_dir(shard_dir)
