"""Feedback shard snapshots (engine/snapshot.py): a restart loads the snapshot and replays only
the tail, with the same state a full replay builds; a snapshot that no longer matches the
files, or a torn one, is ignored."""
from __future__ import annotations

import pytest

from engine import snapshot
from engine.feedback_store import EVENTS, REQUESTS, FeedbackShard
from tests.unit.test_feedback_store import ev, populate, req


def state(shard: FeedbackShard) -> tuple:
    return (shard.stats().model_dump(), shard.memory_updates(0), shard.strategy_stats(),
            shard.context_history("u1", "love story"), sorted(shard._event_ids), sorted(shard._requests))


@pytest.fixture
def every_3(monkeypatch):
    monkeypatch.setattr(FeedbackShard, "SNAPSHOT_EVERY", 3)


def grow(shard: FeedbackShard, n: int) -> None:
    for i in range(n):
        shard.log_request(req(f"x{i}", f"query {i % 3}", f"u{i % 4}"))
        shard.add_events(f"x{i}", [ev(f"xe{i}", f"x{i}", "a"), ev(f"xf{i}", f"x{i}", "b", "play", 2)])


def test_restart_from_a_snapshot_equals_a_full_replay(tmp_path, every_3):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        grow(shard, 7)
        shard.wait_for_snapshot()  # whether the last snapshot covered every line depended on the child's timing
        shard.SNAPSHOT_EVERY = 10**9  # so one more line stays in the tail, which a restart must replay
        shard.log_request(req("tail", "query tail", "u1"))
        live = state(shard)
    assert (shard.path / snapshot.SNAPSHOT).exists()
    with FeedbackShard(tmp_path, 0) as restarted:
        assert state(restarted) == live
        total = len((restarted.path / REQUESTS).read_text().splitlines()) + len(
            (restarted.path / EVENTS).read_text().splitlines())
        assert 0 < restarted.replayed_lines < total  # only the tail past the last snapshot
        assert restarted.add_events("x1", [ev("xe1", "x1", "a")]).duplicates == 1  # dedupe survived
        grow(restarted, 1)
        after = state(restarted)
    (shard.path / snapshot.SNAPSHOT).unlink()
    with FeedbackShard(tmp_path, 0) as full:
        assert full.replayed_lines == len((full.path / REQUESTS).read_text().splitlines()) + len(
            (full.path / EVENTS).read_text().splitlines())
        assert state(full) == after


def test_a_snapshot_that_no_longer_matches_is_ignored(tmp_path, every_3):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        grow(shard, 4)
    events = shard.path / EVENTS
    lines = events.read_bytes().splitlines(keepends=True)
    events.write_bytes(b"".join(lines[:2]))  # the files were replaced behind the snapshot's back
    with FeedbackShard(tmp_path, 0) as restarted:
        assert restarted.stats().events == 2 and restarted.replayed_lines == 2 + 6


def test_a_torn_tail_after_the_snapshot_is_cut_and_a_torn_snapshot_ignored(tmp_path, every_3):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        grow(shard, 4)
        live = state(shard)
    with open(shard.path / EVENTS, "ab") as f:
        f.write(b'{"event_id": "torn')
    (shard.path / (snapshot.SNAPSHOT + ".tmp")).write_bytes(b"half a pick")  # a crash while snapshotting
    with FeedbackShard(tmp_path, 0) as restarted:
        assert state(restarted) == live
    (shard.path / snapshot.SNAPSHOT).write_bytes(b"garbage")
    with FeedbackShard(tmp_path, 0) as restarted:
        assert state(restarted) == live


def test_erasure_drops_the_snapshot_before_rewriting(tmp_path, every_3):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        grow(shard, 4)
        shard.erase_user("u1")
        erased = state(shard)
    assert b"u1" not in (shard.path / snapshot.SNAPSHOT).read_bytes()  # the replay after the rewrite re-snapshots
    with FeedbackShard(tmp_path, 0) as restarted:
        assert state(restarted) == erased and "u1" not in restarted.stats().users
