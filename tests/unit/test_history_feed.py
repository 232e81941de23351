"""The replicated context history (engine/history_feed.py): a snapshot refreshed by deltas
answers exactly what asking every shard answers, after any interleaving of requests,
events and refreshes, and it forgets an erased user when the shard rebuilds."""
from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord
from engine.feedback_client import LocalFeedback
from engine.feedback_store import shard_of
from engine.history_feed import HistorySnapshot

USERS = ["u1", "u2", "u3", None]
QUERIES = ["chill jazz", "Chill  Jazz!", "sad rock", "piano"]
STRATS = ["lexical", "dense", "memory"]


def request(rid: str, query: str, user: str | None, budgets: dict[str, int]) -> RequestRecord:
    return RequestRecord(
        request_id=rid, ts=1000.0, query=query, user_id=user, context={}, features=[],
        plan=PlanRecord(budgets=budgets, propensity=1.0, policy_version="p"),
        candidates=[Candidate(item_id=f"i{j}", hits={s: Hit(j + 1, 1.0) for s in STRATS[:j + 1]}) for j in range(3)],
        shown=["i0", "i1", "i2"], ranker_version="r")


def refresh(feedback: LocalFeedback, snap: HistorySnapshot) -> None:
    for shard in range(feedback.n_shards):
        snap.apply(shard, asyncio.run(feedback.history_delta(shard, *snap.cursor(shard))))


def assert_same(feedback: LocalFeedback, snap: HistorySnapshot) -> None:
    for user in USERS + ["nobody"]:
        for query in QUERIES + ["never asked"]:
            assert snap.history(user, query) == asyncio.run(feedback.history(user, query)), (user, query)


@settings(max_examples=25, deadline=None, database=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["request", "event", "refresh"]), st.integers(0, 10 ** 6)),
                    min_size=1, max_size=40))
def test_snapshot_by_deltas_equals_asking_every_shard(tmp_path_factory, ops):
    feedback = LocalFeedback(tmp_path_factory.mktemp("fb"), 3)
    snap = HistorySnapshot(3)
    rids: list[str] = []
    try:
        for op, seed in ops:
            rng = random.Random(seed)
            if op == "request":
                rid = f"r{len(rids)}-{seed}"
                budgets = {s: rng.choice([0, 10]) for s in STRATS}
                asyncio.run(feedback.log_request(request(rid, rng.choice(QUERIES), rng.choice(USERS), budgets)))
                rids.append(rid)
            elif op == "event" and rids:
                rid = rng.choice(rids)
                ev = EventRecord(event_id=f"e{seed}-{rid}", request_id=rid, item_id=rng.choice(["i0", "i1", "i2"]),
                                 type=rng.choice(["click", "play", "skip"]), position=1, ts=1001.0)
                asyncio.run(feedback.add_events(rid, [ev]))
            else:
                refresh(feedback, snap)
                assert_same(feedback, snap)
        refresh(feedback, snap)
        assert_same(feedback, snap)
        assert all(v == 0 or i is not None for i, v in zip(snap.instances, snap.versions, strict=True))
    finally:
        feedback.close()


def test_a_delta_carries_only_what_changed_and_an_erasure_reloads(tmp_path):
    feedback = LocalFeedback(tmp_path, 2)
    snap = HistorySnapshot(2)
    try:
        for i in range(20):
            asyncio.run(feedback.log_request(request(f"r{i}", QUERIES[i % 4], USERS[i % 3], {"lexical": 10})))
        refresh(feedback, snap)
        assert sum(len(u) for u in snap.users) >= 3 and snap.history("u1", "chill jazz").user.requests == 7
        rid = "late-one"
        asyncio.run(feedback.log_request(request(rid, "piano", "u2", {"dense": 10})))
        shard = shard_of(rid, 2)
        delta = asyncio.run(feedback.history_delta(shard, *snap.cursor(shard)))
        assert not delta.full and set(delta.users) == {"u2"} and set(delta.queries) == {"piano"}
        snap.apply(shard, delta)
        assert_same(feedback, snap)
        before = snap.instances[:]
        asyncio.run(feedback.erase_user("u1"))
        refresh(feedback, snap)
        assert snap.instances != before  # every shard rebuilt, so every copy reloaded
        assert snap.history("u1", "chill jazz").user.requests == 0
        assert_same(feedback, snap)
    finally:
        feedback.close()
