"""FeedbackShard: durable append + fsync, replay after restart, torn tails, idempotence,
all-or-nothing validation, aggregates, memory updates, parquet export, shard routing."""
from __future__ import annotations

import collections
import json
import logging
import os
import random
import threading
import uuid

import pyarrow.parquet as pq
import pytest

from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from engine.feedback_store import AddResult, BadEvent, FeedbackShard, UnknownRequest, read_export, shard_of

# a: lexical + dense, b: lexical, c: dense, d: memory (candidate, not shown), e: shown only
CANDS = {"a": {"lexical": 1, "dense": 2}, "b": {"lexical": 2}, "c": {"dense": 1}, "d": {"memory": 1}}


def req(rid: str, query: str = "Love Story!", user: str | None = "u1") -> RequestRecord:
    return RequestRecord(
        request_id=rid, ts=1000.0, query=query, user_id=user, context={"device": "web"}, features=[0.5, 1.0],
        plan=PlanRecord(budgets={"lexical": 10, "dense": 10, "memory": 0}, propensity=0.25, policy_version="p0"),
        candidates=[Candidate(item_id=i, hits={s: Hit(r, 1.0 / r) for s, r in h.items()})
                    for i, h in CANDS.items()],
        shown=["a", "b", "c", "e"], ranker_version="r0")


def ev(eid: str, rid: str, item: str, type_: str = "click", pos: int = 1) -> EventRecord:
    return EventRecord(event_id=eid, request_id=rid, item_id=item, type=type_, position=pos, ts=1001.0)


def populate(shard: FeedbackShard) -> None:
    shard.log_request(req("r1", "Love Story!", "u1"))
    shard.log_request(req("r2", "love  story", "u2"))
    shard.add_events("r1", [ev("e1", "r1", "a"), ev("e2", "r1", "a", "play"), ev("e3", "r1", "b", "skip", 2)])
    shard.add_events("r2", [ev("e4", "r2", "c", "click", 3), ev("e5", "r2", "e", "like", 4)])


UPDATES = [(1, "love story", "a", 1.0), (2, "love story", "a", 2.0), (3, "love story", "b", -0.5),
           (4, "love story", "c", 1.0), (5, "love story", "e", 3.0)]
STATS = {
    "shards": 1, "shard": 0, "requests": 2, "events": 5, "entity_events": 0,
    "events_by_type": {"click": 2, "play": 1, "like": 1, "skip": 1},
    "strategies": {"dense": {"fetched": 4, "chosen": 2, "hits": 3},
                   "lexical": {"fetched": 4, "chosen": 2, "hits": 2},
                   "memory": {"fetched": 2, "chosen": 0, "hits": 0}},
    "users": {"u1": {"click": 1, "play": 1, "like": 0, "skip": 1}, "u2": {"click": 1, "play": 0, "like": 1, "skip": 0}},
    "query_clicks": {"love story": 2},
    "latest_seq": 5, "memory_updates": 5,
}


def lines(shard: FeedbackShard, name: str) -> list[str]:
    return (shard.path / name).read_text().splitlines()


def snapshot(shard: FeedbackShard) -> tuple:
    return (shard.stats().model_dump(), shard.memory_updates(0), shard.strategy_stats(),
            shard.user_history("u1"), shard.user_history("u2"))


def test_aggregates_exact_values(tmp_path):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        assert shard.stats().model_dump() == STATS
        json.dumps(shard.stats().model_dump())  # JSON-serialisable
        assert shard.memory_updates(0) == (UPDATES, 5)
        assert shard.user_history("u1") == {"user_id": "u1", "requests": 1, "last_clicked": ["a"],
                                            "counts": {"click": 1, "play": 1, "like": 0, "skip": 1}}
        assert shard.user_history("nobody") == {"user_id": "nobody", "requests": 0, "last_clicked": [],
                                                "counts": {"click": 0, "play": 0, "like": 0, "skip": 0}}
        assert shard.strategy_stats() == STATS["strategies"]


def test_files_are_one_json_record_per_line(tmp_path):
    with FeedbackShard(tmp_path, 3) as shard:
        populate(shard)
        assert shard.path == tmp_path / "shard-3"
        assert [RequestRecord.model_validate_json(s) for s in lines(shard, "requests.jsonl")] == \
            [req("r1", "Love Story!", "u1"), req("r2", "love  story", "u2")]
        assert [EventRecord.model_validate_json(s).event_id for s in lines(shard, "events.jsonl")] == \
            ["e1", "e2", "e3", "e4", "e5"]


def test_replay_rebuilds_identical_state(tmp_path):
    shard = FeedbackShard(tmp_path, 0)
    populate(shard)
    before = snapshot(shard)
    shard.close()
    again = FeedbackShard(tmp_path, 0)
    assert snapshot(again) == before
    assert again.stats().model_dump() == STATS
    # requests are known again, and seqs continue from the file
    assert again.add_events("r1", [ev("e6", "r1", "c", "click", 3)]) == AddResult(accepted=1, duplicates=0,
                                                                                    stored_total=6)
    assert again.memory_updates(5) == ([(6, "love story", "c", 1.0)], 6)
    again.close()
    assert FeedbackShard(tmp_path, 0).memory_updates(0) == (UPDATES + [(6, "love story", "c", 1.0)], 6)


def test_torn_last_lines_are_truncated(tmp_path, caplog):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        before = snapshot(shard)
    sizes = {n: (tmp_path / "shard-0" / n).stat().st_size for n in ("requests.jsonl", "events.jsonl")}
    with open(tmp_path / "shard-0" / "requests.jsonl", "ab") as f:
        f.write(b'{"request_id": "r9", "ts": 1.0, "que')
    with open(tmp_path / "shard-0" / "events.jsonl", "ab") as f:
        f.write(ev("e9", "r1", "a").model_dump_json().encode()[:-3])  # no closing brace, no newline
    with caplog.at_level(logging.WARNING, logger="engine.feedback_store"):
        shard = FeedbackShard(tmp_path, 0)
    assert sum("truncated" in r.getMessage() for r in caplog.records) == 2
    assert {n: (shard.path / n).stat().st_size for n in sizes} == sizes
    assert snapshot(shard) == before
    assert shard.add_events("r1", [ev("e9", "r1", "a")]).accepted == 1  # the torn event was never stored
    assert shard.memory_updates(5) == ([(6, "love story", "a", 1.0)], 6)
    assert all(EventRecord.model_validate_json(s) for s in lines(shard, "events.jsonl"))
    shard.close()


def test_garbage_tail_with_newline_is_truncated_and_middle_corruption_skipped(tmp_path, caplog):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
    path = tmp_path / "shard-0" / "events.jsonl"
    rows = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(rows[0] + b"not json\n" + b"".join(rows[1:]) + b"\x00\x00\n")
    with caplog.at_level(logging.WARNING, logger="engine.feedback_store"):
        shard = FeedbackShard(tmp_path, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("line 2 is corrupt" in m for m in messages) and any("truncated" in m for m in messages)
    assert path.read_bytes().endswith(rows[-1])
    assert shard.stats().model_dump()["events"] == 5
    # the corrupt line keeps its seq (2): the seqs of the later events are unchanged from the file
    assert [u[0] for u in shard.memory_updates(0)[0]] == [1, 3, 4, 5, 6]
    shard.close()


def test_duplicates_ignored_in_batch_across_batches_and_restart(tmp_path):
    shard = FeedbackShard(tmp_path, 0)
    shard.log_request(req("r1"))
    shard.log_request(req("r1"))  # retried request: ignored
    assert len(lines(shard, "requests.jsonl")) == 1
    assert shard.add_events("r1", [ev("e1", "r1", "a"), ev("e1", "r1", "a"), ev("e2", "r1", "b")]) == \
        AddResult(accepted=2, duplicates=1, stored_total=2)
    assert shard.add_events("r1", [ev("e2", "r1", "b"), ev("e3", "r1", "c")]) == \
        AddResult(accepted=1, duplicates=1, stored_total=3)
    shard.close()
    shard = FeedbackShard(tmp_path, 0)
    shard.log_request(req("r1"))
    assert shard.add_events("r1", [ev("e1", "r1", "a"), ev("e3", "r1", "c")]) == \
        AddResult(accepted=0, duplicates=2, stored_total=3)
    assert len(lines(shard, "requests.jsonl")) == 1 and len(lines(shard, "events.jsonl")) == 3
    assert shard.stats().model_dump()["events_by_type"]["click"] == 3
    shard.close()


def test_unknown_request(tmp_path):
    with FeedbackShard(tmp_path, 2) as shard:
        with pytest.raises(UnknownRequest) as info:
            shard.add_events("nope", [ev("e1", "nope", "a")])
        assert isinstance(info.value, KeyError)
        assert str(info.value).startswith("request 'nope' was never logged in feedback shard 2")
        assert not (shard.path / "events.jsonl").read_bytes()


@pytest.mark.parametrize("bad, message", [
    (ev("x", "r1", "zzz"), "item 'zzz' was neither shown nor a candidate"),
    (ev("x", "r2", "a"), "is for request 'r2', not 'r1'"),
    (ev("x", "r1", "a", "click", 0), "position must be >= 1"),
])
def test_bad_event_rejects_whole_batch(tmp_path, bad, message):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        before, size = snapshot(shard), (shard.path / "events.jsonl").stat().st_size
        with pytest.raises(BadEvent, match=message):
            shard.add_events("r1", [ev("g1", "r1", "a"), ev("g2", "r1", "b"), bad])
        assert (shard.path / "events.jsonl").stat().st_size == size
        assert snapshot(shard) == before
        # the good events' ids were not consumed
        assert shard.add_events("r1", [ev("g1", "r1", "a"), ev("g2", "r1", "b")]).accepted == 2


def test_failed_fsync_leaves_nothing_behind(tmp_path, monkeypatch):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        before, size = snapshot(shard), (shard.path / "events.jsonl").stat().st_size

        def boom(fd):
            raise OSError(5, "I/O error")
        monkeypatch.setattr(os, "fsync", boom)
        with pytest.raises(OSError):
            shard.add_events("r1", [ev("g1", "r1", "a")])
        with pytest.raises(OSError):
            shard.log_request(req("r3"))
        monkeypatch.undo()
        assert (shard.path / "events.jsonl").stat().st_size == size and snapshot(shard) == before
        assert shard.add_events("r1", [ev("g1", "r1", "a")]).accepted == 1
        shard.log_request(req("r3"))
        assert shard.stats().model_dump()["requests"] == 3


def test_strategy_hits_count_every_strategy_that_found_the_item(tmp_path):
    with FeedbackShard(tmp_path, 0) as shard:
        shard.log_request(req("r1"))
        shard.add_events("r1", [ev("e1", "r1", "a"), ev("e2", "r1", "a", "skip")])
        assert shard.strategy_stats() == {"dense": {"fetched": 2, "chosen": 1, "hits": 1},
                                          "lexical": {"fetched": 2, "chosen": 1, "hits": 1},
                                          "memory": {"fetched": 1, "chosen": 0, "hits": 0}}
        shard.add_events("r1", [ev("e3", "r1", "d", "like", 5), ev("e4", "r1", "e", "play", 4)])
        assert {s: v["hits"] for s, v in shard.strategy_stats().items()} == {"dense": 1, "lexical": 1, "memory": 1}


def test_memory_updates_since_and_limit(tmp_path):
    with FeedbackShard(tmp_path, 0) as shard:
        populate(shard)
        assert shard.memory_updates(0, limit=2) == (UPDATES[0:2], 2)
        assert shard.memory_updates(2, limit=2) == (UPDATES[2:4], 4)
        assert shard.memory_updates(4, limit=2) == (UPDATES[4:], 5)
        assert shard.memory_updates(5) == ([], 5)
        assert shard.memory_updates(0, limit=5) == (UPDATES, 5)
        assert shard.memory_updates(3) == (UPDATES[3:], 5)
        with pytest.raises(ValueError):
            shard.memory_updates(0, limit=0)
        # a query that normalizes to nothing gives no update, but its event still takes a seq
        shard.log_request(req("r3", "!!!"))
        shard.add_events("r3", [ev("e6", "r3", "a")])
        shard.add_events("r1", [ev("e7", "r1", "b")])
        assert shard.memory_updates(5) == ([(7, "love story", "b", 1.0)], 7)


def test_user_history_keeps_last_20_clicks_newest_first(tmp_path):
    with FeedbackShard(tmp_path, 0) as shard:
        shard.log_request(req("r1", user="u7"))
        items = [("a", "b", "c", "d", "e")[i % 5] for i in range(25)]
        shard.add_events("r1", [ev(f"e{i}", "r1", it) for i, it in enumerate(items)] + [ev("p", "r1", "a", "play")])
        hist = shard.user_history("u7")
        assert hist["last_clicked"] == list(reversed(items))[:20]
        assert hist["counts"] == {"click": 25, "play": 1, "like": 0, "skip": 0} and hist["requests"] == 1


def test_concurrent_writers(tmp_path):
    with FeedbackShard(tmp_path, 0) as shard:
        shard.log_request(req("r1"))

        def worker(t):
            for i in range(25):
                shard.add_events("r1", [ev(f"t{t}-{i}", "r1", "a"), ev("shared", "r1", "b")])
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert shard.stats().model_dump()["events"] == 201 and len(lines(shard, "events.jsonl")) == 201
        updates, latest = shard.memory_updates(0)
        assert [u[0] for u in updates] == list(range(1, 202)) and latest == 201


def test_shard_of_is_stable_and_spread():
    assert [shard_of("req-1", 8), shard_of("req-2", 8), shard_of("abc", 8)] == [1, 3, 2]
    assert shard_of("req-1", 1000) == 545 and shard_of("", 3) == 0 and shard_of("é", 5) == 1
    assert shard_of("anything", 1) == 0
    with pytest.raises(ValueError):
        shard_of("x", 0)
    rng = random.Random(0)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(1000)]
    counts = collections.Counter(shard_of(i, 8) for i in ids)
    assert sorted(counts) == list(range(8)) and all(85 <= n <= 165 for n in counts.values())


def test_export_round_trip_over_two_shards(tmp_path):
    out = tmp_path / "export"
    with FeedbackShard(tmp_path / "log", 0) as s0, FeedbackShard(tmp_path / "log", 1) as s1:
        populate(s0)
        s1.log_request(req("r7", "chill jazz", None))
        s1.add_events("r7", [ev("e70", "r7", "c", "play", 3)])
        assert s0.export(out).model_dump() == {"shard": 0, "requests": 2, "events": 5}
        assert s1.export(out).model_dump() == {"shard": 1, "requests": 1, "events": 1}
    assert sorted(p.name for p in out.iterdir()) == ["events-shard0.parquet", "events-shard1.parquet",
                                                    "requests-shard0.parquet", "requests-shard1.parquet"]
    table = pq.read_table(out / "events-shard0.parquet")
    assert table.column_names == ["json", "event_id", "request_id", "ts", "type", "item_id", "entity_id"]
    assert table.column("type").to_pylist() == ["click", "play", "skip", "click", "like"]
    assert pq.read_table(out / "requests-shard1.parquet").column("request_id").to_pylist() == ["r7"]
    requests, events = read_export(out)
    assert requests == [req("r1", "Love Story!", "u1"), req("r2", "love  story", "u2"), req("r7", "chill jazz", None)]
    assert [e.event_id for e in events] == ["e1", "e2", "e3", "e4", "e5", "e70"]
    assert events[-1] == ev("e70", "r7", "c", "play", 3)


def test_export_of_empty_shard(tmp_path):
    with FeedbackShard(tmp_path / "log", 4) as shard:
        assert shard.export(tmp_path / "out").model_dump() == {"shard": 4, "requests": 0, "events": 0}
    assert read_export(tmp_path / "out") == ([], [])
