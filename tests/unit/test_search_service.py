"""The request side without HTTP or Ray (`engine.search_service`), on the tiny catalogue with
real strategies that need no JVM or torch, real local feedback shards, and the micro-batcher
that in-process callers use where Serve replicas use `@serve.batch`."""
from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from core.records import Candidate, EventRecord
from engine.batching import MicroBatcher
from engine.feedback_client import LocalFeedback
from engine.feedback_store import UnknownRequest
from engine.search_service import SearchService, ServiceTimings
from ranking.model import FallbackRanker, rank_many
from retrievers import Query
from retrievers.index import IndexHandle, build_index
from rl.policy import FixedPolicy
from tests.helpers.catalogue import tiny_dataset

STRATEGIES = ["popularity", "structured", "explore", "memory"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> IndexHandle:
    out = tmp_path_factory.mktemp("tiny-index")
    ds = tiny_dataset()
    ds.schema = dataclasses.replace(ds.schema, entity_types={"artist": ["artist"], "album": ["album", "artist"]})
    build_index(ds, out, STRATEGIES)
    return IndexHandle.open(out)


def service(index: IndexHandle, feedback_dir: Path, log_delay_s: float = 0.0) -> tuple[SearchService, LocalFeedback]:
    retrievers = {s: index.load(s) for s in STRATEGIES}
    catalog = index.catalog()
    feedback = LocalFeedback(feedback_dir, 2)
    if log_delay_s:  # a slow disk: the answer must not wait for it, feedback must
        write = feedback.log_requests

        async def slow_write(recs):
            await asyncio.sleep(log_delay_s)
            await write(recs)
        feedback.log_requests = slow_write

    def fn(r):
        async def call(q: Query, k: int) -> list[Candidate]:
            return r.retrieve(q, k)
        return call

    ranker = MicroBatcher(lambda reqs: rank_many(FallbackRanker(), reqs, catalog))

    async def rank(query, cands):
        return "fallback-rrf", await ranker((query, cands))
    policy = FixedPolicy(STRATEGIES, {s: 10 for s in STRATEGIES}, epsilon=0.0)
    return SearchService({s: fn(r) for s, r in retrievers.items()}, rank, feedback, policy, index,
                         ServiceTimings(history_refresh_s=0.05)), feedback


def test_search_answers_with_display_fields_entities_and_a_durable_log(index, tmp_path):
    async def run():
        svc, feedback = service(index, tmp_path, log_delay_s=0.2)
        ans = await svc.search("taylor swift love story", 5, user_id="u1")
        res = ans.result
        assert res.ranked and len(res.ranked) <= 5
        first = res.ranked[0][0]
        assert ans.display[first]["title"] and "year" in ans.display[first]
        assert any(h.entity.name == "Taylor Swift" for h in ans.entities)  # the query names the artist
        assert feedback.shard(res.request_id).stats().requests == 0  # answered before the slow log write
        ev = EventRecord(event_id="e1", request_id=res.request_id, item_id=first, type="click", position=1, ts=1.0)
        out = await svc.add_events(res.request_id, [ev])  # waits for the write, then stores
        assert out.accepted == 1 and feedback.shard(res.request_id).stats().requests == 1
        with pytest.raises(UnknownRequest):
            await svc.add_events("not-a-request-id", [ev])
        await svc.close()
    asyncio.run(run())


def test_feedback_for_a_request_logged_elsewhere_waits_for_its_write(index, tmp_path):
    """A request answered by another replica: its id is unknown here for a moment, and the
    feedback is retried until the write lands (within the grace period), not refused."""
    async def run():
        svc, feedback = service(index, tmp_path)
        other, _ = service(index, tmp_path / "unused")
        pending = asyncio.Event()

        async def late(rec):
            await pending.wait()
            await feedback.log_request(rec)
        other.pipeline.log_fn = late  # writes to the same shards as `svc`, as two replicas share them
        res = (await other.search("daft punk", 3)).result
        ev = EventRecord(event_id="e1", request_id=res.request_id, item_id=res.ranked[0][0], type="click",
                         position=1, ts=1.0)
        store = asyncio.create_task(svc.add_events(res.request_id, [ev]))
        await asyncio.sleep(0.1)
        assert not store.done()
        pending.set()
        assert (await store).accepted == 1
        await asyncio.gather(svc.close(), other.close())
    asyncio.run(run())


def test_history_snapshot_follows_the_shards(index, tmp_path):
    """Context features read a local snapshot that the background refresh keeps in step."""
    async def run():
        svc, _ = service(index, tmp_path)
        for _ in range(3):
            await svc.search("jazz", 3, user_id="u7")
        await svc.pipeline.drain()
        await asyncio.sleep(0.2)  # a few refresh rounds
        h = svc.history.history("u7", "jazz")
        assert h.user.requests == 3 and h.query.requests == 3
        await svc.close()
    asyncio.run(run())


def test_micro_batcher_groups_concurrent_calls_and_isolates_errors():
    def double(xs):
        return [ValueError(f"bad {x}") if x < 0 else 2 * x for x in xs]

    async def run():
        b = MicroBatcher(double, max_size=4, wait_s=0.01)
        out = await asyncio.gather(*[b(x) for x in (1, 2, -3, 4, 5)], return_exceptions=True)
        assert out[:2] == [2, 4] and isinstance(out[2], ValueError) and out[3:] == [8, 10]
        assert b.batches == [4, 1]  # full at 4, the rest after the wait
        alone = await b(7)
        assert alone == 14 and b.batches[-1] == 1
    asyncio.run(run())


def test_rank_many_equals_ranking_each_request_alone(index):
    catalog = index.catalog()
    pop = index.load("popularity")
    reqs = [(q, pop.retrieve(Query(q), 8)) for q in ("jazz", "pop", "electronic chill")]
    from ranking.model import rank
    assert rank_many(FallbackRanker(), reqs, catalog) == [rank(FallbackRanker(), q, c, catalog) for q, c in reqs]


def test_concurrent_requests_are_logged_together_and_each_waits_for_its_write(index, tmp_path):
    """Group commit: concurrent answers' logs go out in one batch (one write and fsync per
    shard), and feedback on any of them is stored once that batch is durable."""
    async def run():
        svc, feedback = service(index, tmp_path)
        answers = await asyncio.gather(*[svc.search(q, 3) for q in ("jazz", "pop", "metal", "indie", "folk")])
        await svc.pipeline.drain()
        assert svc.log_batcher.batches[0] == 5
        assert sum(s.stats().requests for s in feedback.shards) == 5
        for a in answers:
            ev = EventRecord(event_id=f"e-{a.result.request_id}", request_id=a.result.request_id,
                             item_id=a.result.ranked[0][0], type="click", position=1, ts=1.0)
            assert (await svc.add_events(a.result.request_id, [ev])).accepted == 1
        await svc.close()
    asyncio.run(run())


def test_log_requests_writes_a_batch_once_and_keeps_first_records(tmp_path):
    """The shard's group commit keeps log_request's rules: a repeated id is ignored, a shadow
    completion is appended once, and the file replays to the same state."""
    from core.records import PlanRecord, RequestRecord
    from engine.feedback_store import REQUESTS, FeedbackShard

    def rec(rid, shadow=False, fetched=None):
        return RequestRecord(request_id=rid, ts=1.0, query="q", plan=PlanRecord(budgets={"a": 10}, propensity=1.0,
                             policy_version="p", shadow=shadow), candidates=[Candidate.of("a", "x", 1, 1.0)],
                             shown=["x"], ranker_version="test", fetched=fetched or {})
    shard = FeedbackShard(tmp_path, 0)
    shard.log_requests([rec("r1"), rec("r2", shadow=True), rec("r1")])
    shard.log_requests([rec("r2", shadow=True, fetched={"a": 100}), rec("r2", shadow=True, fetched={"a": 100})])
    assert shard.stats().requests == 2
    assert len((tmp_path / "shard-0" / REQUESTS).read_text().splitlines()) == 3  # r1, r2, r2's completion
    shard.close()
    again = FeedbackShard(tmp_path, 0)
    assert again.stats().requests == 2
    again.close()


def test_the_parse_travels_once_and_only_where_it_is_used(index):
    """The service's dictionary (catalogue) and the structured strategy's (its postings) are the
    same, so the parse made for the features is the one structured acts on; a parse from another
    dictionary is ignored; and the pipeline sends it only to strategies with `uses_parse`."""
    from retrievers.understanding import QueryUnderstanding
    from rl.features import ContextFeaturizer

    structured = index.load("structured")
    featurizer = ContextFeaturizer.from_catalog(index.catalog().values(), index.schema)
    assert featurizer.understanding.id == structured.understanding.id
    for text in ("taylor swift 2014", "chill jazz", "tayler swiftt"):
        given = featurizer.understanding.parse(text)
        assert structured.parse(text, given) is given
        assert structured.retrieve(Query(text, parse=given), 5) == structured.retrieve(text, 5)
        foreign = QueryUnderstanding({"artist": ["someone else"]}).parse(text)
        assert structured.parse(text, foreign) is not foreign

    async def run():
        seen: dict[str, object] = {}

        def spy(name):
            async def call(q: Query, k: int):
                seen[name] = q.parse
                return [Candidate.of(name, "t01", 1, 1.0)]
            return call
        svc, _ = service(index, index.dir.parent / "fb-parse")
        svc.pipeline.retrievers = {s: spy(s) for s in STRATEGIES}
        svc.pipeline.parse_for = frozenset({"structured"})
        await svc.search("taylor swift", 3)
        assert seen["structured"] is not None and seen["structured"].text == "taylor swift"
        assert all(seen[s] is None for s in STRATEGIES if s != "structured")
        await svc.close()
    asyncio.run(run())
