"""Erasing a user from a feedback shard (engine/erasure.py, FeedbackShard.erase_user): files,
aggregates, memory updates and exports lose them; it survives a restart and a crash at any
step of the rewrite."""
from __future__ import annotations

import pytest

from engine import erasure
from engine.feedback_store import EVENTS, REQUESTS, FeedbackShard, UnknownRequest, read_export
from tests.unit.test_feedback_store import ev, populate, req


def contents(shard: FeedbackShard) -> str:
    return (shard.path / REQUESTS).read_text() + (shard.path / EVENTS).read_text()


def test_erase_removes_the_user_everywhere_and_survives_a_restart(tmp_path):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        shard.log_request(req("r3", "sad rock", "u1"))
        shard.add_events("r3", [ev("e6", "r3", "a")])
        assert shard.epoch == 0
        counts = shard.erase_user("u1")
        assert (counts.requests, counts.events, counts.epoch) == (2, 4, 1)
        stats = shard.stats()
        assert stats.requests == 1 and stats.events == 2 and set(stats.users) == {"u2"}
        assert "sad rock" not in stats.query_clicks
        assert shard.memory_updates(0) == ([(1, "love story", "c", 1.0), (2, "love story", "e", 3.0)], 2)
        assert '"u1"' not in contents(shard) and "sad rock" not in contents(shard)
        with pytest.raises(UnknownRequest):
            shard.add_events("r1", [ev("e9", "r1", "a")])
        shard.log_request(req("r4", "new", "u3"))  # the shard keeps appending after the rewrite
        shard.add_events("r4", [ev("e10", "r4", "a")])
        shard.export(tmp_path / "export")
    requests, events = read_export(tmp_path / "export")
    assert {r.user_id for r in requests} == {"u2", "u3"} and {e.event_id for e in events} == {"e4", "e5", "e10"}
    again = FeedbackShard(tmp_path, 0)
    assert again.epoch == 1 and again.stats().requests == 2 and set(again.stats().users) == {"u2", "u3"}
    assert again.erase_user("nobody").requests == 0
    again.close()


@pytest.mark.parametrize("crash_after", [0, 1, 2])  # renames done before the crash
def test_an_interrupted_erasure_finishes_on_the_next_start(tmp_path, monkeypatch, crash_after):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
    real, calls = erasure.write_atomic, []

    def crashing(target, lines):
        if len(calls) == crash_after:
            raise OSError("power cut")
        calls.append(target.name)
        real(target, lines)
    monkeypatch.setattr(erasure, "write_atomic", crashing)
    shard = FeedbackShard(tmp_path, 0)
    with pytest.raises(OSError):
        shard.erase_user("u1")
    shard.close()
    assert (shard.path / erasure.PENDING).exists()
    monkeypatch.setattr(erasure, "write_atomic", real)
    with FeedbackShard(tmp_path, 0) as restarted:
        assert set(restarted.stats().users) == {"u2"} and restarted.stats().events == 2
        assert '"u1"' not in contents(restarted)
        assert not (restarted.path / erasure.PENDING).exists() and restarted.epoch == 1
