"""Feedback on entities (a click on an entity card or a related entity), end to end below HTTP:
the request log keeps the entities shown and their `via` results, the feedback store accepts
only shown entities, stores, replays, exports, erases and counts them, and the learners credit
the via results (`core.credit`): the strategies' hits, the bandit's reward (weight shared
over the via items) and the ranker's labels (each via item labelled). Known answers by hand."""
from __future__ import annotations

import asyncio
import json
import math

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from core.credit import event_items, event_shares
from core.records import Candidate, EventRecord, Hit, PlanRecord, RequestRecord, ShownEntity
from deployments.schemas import FeedbackEvent
from engine.feedback_store import BadEvent, FeedbackShard, read_export
from ranking.groups import click_groups
from rl.cost import CostModel
from rl.experience import experience
from rl.policy import ActionSpace
from rl.reward import RewardConfig, acted_items, plan_gain
from tests.helpers.catalogue import tiny_dataset

# a: lexical 1 + dense 2; b: lexical 2; c: dense 1; d: memory 1 (a candidate, not shown)
CANDS = {"a": {"lexical": 1, "dense": 2}, "b": {"lexical": 2}, "c": {"dense": 1}, "d": {"memory": 1}}
# the artist of a and c (related, and named by the query: a card), an album of b alone, a card shown through nothing
ENTITIES = [ShownEntity(entity_id="artist:x", role="card", via=["a", "c"]),
            ShownEntity(entity_id="artist:x", role="related", via=["a", "c"]),
            ShownEntity(entity_id="album:y|x", role="related", via=["b"]),
            ShownEntity(entity_id="artist:z", role="card", via=[])]
CFG = RewardConfig(price_per_10ms=0.0)


def req(rid: str, user: str = "u1", entities: list[ShownEntity] | None = None) -> RequestRecord:
    return RequestRecord(
        request_id=rid, ts=1000.0, query="x songs", user_id=user, features=[0.0],
        plan=PlanRecord(budgets={"lexical": 10, "dense": 10, "memory": 0}, propensity=0.5, policy_version="p0"),
        candidates=[Candidate(i, {s: Hit(r, 1.0 / r) for s, r in h.items()}) for i, h in CANDS.items()],
        shown=["a", "b", "c"], ranker_version="r0", entities=ENTITIES if entities is None else entities)


def ent(eid: str, rid: str, entity: str, type_: str = "click", pos: int = 1) -> EventRecord:
    return EventRecord(event_id=eid, request_id=rid, entity_id=entity, type=type_, position=pos, ts=1001.0)


def item(eid: str, rid: str, item_id: str, type_: str = "click", pos: int = 1) -> EventRecord:
    return EventRecord(event_id=eid, request_id=rid, item_id=item_id, type=type_, position=pos, ts=1001.0)


def test_the_credit_rule():
    via = req("r1").entity_via()
    assert via == {"artist:x": ("a", "c"), "album:y|x": ("b",), "artist:z": ()}
    assert event_items(ent("e", "r1", "artist:x"), via) == ("a", "c")
    assert event_shares(ent("e", "r1", "artist:x"), via) == {"a": 0.5, "c": 0.5}
    assert event_shares(ent("e", "r1", "artist:z"), via) == {}  # shown through no result: credits nothing
    assert event_shares(ent("e", "r1", "artist:unknown"), via) == {}
    assert event_shares(item("e", "r1", "b"), via) == {"b": 1.0}


def test_store_accepts_shown_entities_only_and_counts_them(tmp_path):
    with FeedbackShard(tmp_path, 0) as shard:
        shard.log_request(req("r1"))
        for bad, message in [(ent("x", "r1", "artist:nobody"), "entity 'artist:nobody' was not shown in request"),
                             (item("x", "r1", "a").model_copy(update={"entity_id": "artist:x"}), "exactly one"),
                             (item("x", "r1", "a").model_copy(update={"item_id": None}), "exactly one")]:
            with pytest.raises(BadEvent, match=message):
                shard.add_events("r1", [ent("ok", "r1", "artist:x"), bad])  # all or nothing
        assert shard.stats().events == 0
        out = shard.add_events("r1", [ent("e1", "r1", "artist:x", "click", 1), ent("e2", "r1", "album:y|x", "skip", 2),
                                      ent("e3", "r1", "artist:z", "like", 2), item("e4", "r1", "c", "click", 3)])
        assert out.accepted == 4
        stats = shard.stats()
        assert (stats.events, stats.entity_events) == (4, 3)
        assert stats.events_by_type == {"click": 2, "play": 0, "like": 1, "skip": 1}
        # hits: artist:x credits lexical and dense (a: both, c: dense) once each; the skip on album:y|x
        # is no hit; the like on artist:z credits no one (shown through nothing); the click on c: dense
        assert {s: c.hits for s, c in stats.strategies.items()} == {"dense": 2, "lexical": 1, "memory": 0}
        assert stats.users["u1"] == {"click": 2, "play": 0, "like": 1, "skip": 1}
        assert shard.user_history("u1")["last_clicked"] == ["c"]  # items only
        assert shard.memory_updates(0) == ([(4, "x songs", "c", 1.0)], 4)  # the memory learns item events only
        before = shard.stats().model_dump()
    again = FeedbackShard(tmp_path, 0)  # replayed from the files: the same numbers
    assert again.stats().model_dump() == before
    assert again.add_events("r1", [ent("e1", "r1", "artist:x")]).duplicates == 1
    again.erase_user("u1")  # the user's requests go, and every event on them, entity events included
    assert (again.stats().events, again.stats().entity_events, again.stats().requests) == (0, 0, 0)
    again.close()


def test_export_and_old_logs_without_entities(tmp_path):
    shard_dir = tmp_path / "log" / "shard-0"
    shard_dir.mkdir(parents=True)
    old_req = req("r0", entities=[]).model_dump(mode="json")
    del old_req["entities"]  # a request logged before entities existed
    old_ev = json.loads(item("e0", "r0", "a").model_dump_json())
    del old_ev["entity_id"]
    (shard_dir / "requests.jsonl").write_text(json.dumps(old_req) + "\n")
    (shard_dir / "events.jsonl").write_text(json.dumps(old_ev) + "\n")
    with FeedbackShard(tmp_path / "log", 0) as shard:
        assert shard.stats().events == 1 and shard.stats().strategies["lexical"].hits == 1
        with pytest.raises(BadEvent, match="was not shown"):
            shard.add_events("r0", [ent("x", "r0", "artist:x")])
        shard.log_request(req("r1"))
        shard.add_events("r1", [ent("e1", "r1", "artist:x"), item("e2", "r1", "b", "play", 2)])
        shard.export(tmp_path / "out")
    table = pq.read_table(tmp_path / "out" / "events-shard0.parquet")
    assert table.column("item_id").to_pylist() == ["a", None, "b"]
    assert table.column("entity_id").to_pylist() == [None, "artist:x", None]
    requests, events = read_export(tmp_path / "out")
    assert requests[0].entities == [] and requests[1].entities == ENTITIES
    assert events[1] == ent("e1", "r1", "artist:x")


def test_reward_shares_an_entity_event_over_its_via_items():
    r = req("r1")
    via = r.entity_via()
    assert acted_items([ent("e1", "r1", "artist:x", "play")], CFG, via) == {"a": 1.0, "c": 1.0}  # 2 / 2 each
    assert acted_items([ent("e1", "r1", "artist:x")], CFG) == {}  # no via known: no credit
    # per item the largest credit counts: a click on c (1.0) beats the artist click's share (0.5)
    assert acted_items([ent("e1", "r1", "artist:x"), item("e2", "r1", "c")], CFG, via) == {"a": 0.5, "c": 1.0}
    assert acted_items([ent("e1", "r1", "album:y|x", "skip")], CFG, via) == {"b": -0.5}
    acted = acted_items([ent("e1", "r1", "artist:x")], CFG, via)
    cands = r.served()
    # lexical finds a at rank 1; dense finds c at 1 and a at 2 (a's best rank under both: 1)
    assert plan_gain(cands, acted, {"lexical": 10, "dense": 0}, CFG) == pytest.approx(0.5)
    assert plan_gain(cands, acted, {"lexical": 0, "dense": 10}, CFG) == pytest.approx(0.5 + 0.5 / math.log2(3))
    assert plan_gain(cands, acted, {"lexical": 10, "dense": 10}, CFG) == pytest.approx(1.0)  # the whole weight


def test_experience_credits_the_plans_that_found_the_via_items():
    space = ActionSpace(["lexical", "dense", "memory"])
    r = req("r1")
    exp = experience([r], {"r1": [ent("e1", "r1", "artist:x")]}, space, CFG, CostModel())
    ctx, dec = exp.contexts[0], exp.decisions[0]
    lv = space.levels
    assert ctx.gains[lv.index(10), 0, 0] == pytest.approx(0.5)
    assert ctx.gains[0, lv.index(10), 0] == pytest.approx(0.5 + 0.5 / math.log2(3))
    assert ctx.gains[0, 0, lv.index(10)] == 0.0  # memory found no via item
    assert dec.reward == pytest.approx(1.0 - float(CFG.price(CostModel().plan_ms(r.plan.budgets, 3))))


def test_ranker_labels_every_via_item_with_the_events_label():
    catalog = {it.id: it for it in tiny_dataset().items}
    r1, r2, r3 = req("r1"), req("r2"), req("r3")
    events = [ent("e1", "r1", "artist:x"),                                 # a, c: click -> 1
              ent("e2", "r2", "artist:x"), item("e3", "r2", "a", "like"),  # a: like 3 beats 1; c: 1
              ent("e4", "r3", "artist:z", "like")]                        # shown through nothing: no group
    groups = {g.qid: g for g in click_groups([r1, r2, r3], events, catalog)}
    assert sorted(groups) == ["r1", "r2"]
    assert [c.item_id for c in groups["r1"].cands] == ["a", "b", "c", "d"]  # shown order, then the rest
    assert groups["r1"].y.tolist() == [1, 0, 1, 0]
    assert groups["r2"].y.tolist() == [3, 0, 1, 0]
    old = req("r4", entities=[])  # a request logged before entities: an entity event on it labels nothing
    assert click_groups([old], [ent("e5", "r4", "artist:x")], catalog) == []


def test_http_event_names_exactly_one_target():
    assert FeedbackEvent(event_id="e", entity_id="artist:x", type="click", position=1).item_id is None
    for bad, message in (({}, "exactly one of item_id"), ({"item_id": "a", "entity_id": "artist:x"}, "exactly one"),
                         ({"entity_id": ""}, "at least 1 character")):
        with pytest.raises(ValidationError, match=message):
            FeedbackEvent(event_id="e", type="click", position=1, **bad)


@pytest.fixture(scope="module")
def service_index(tmp_path_factory):
    import dataclasses

    from retrievers.index import IndexHandle, build_index
    ds = tiny_dataset()
    ds.schema = dataclasses.replace(ds.schema, entity_types={"artist": ["artist"], "album": ["album", "artist"]})
    out = tmp_path_factory.mktemp("tiny-entities")
    build_index(ds, out, ["popularity", "structured"])
    return IndexHandle.open(out)


def test_the_service_logs_shown_entities_and_their_via(service_index, tmp_path):
    from core.records import Candidate as C
    from engine.feedback_client import LocalFeedback
    from engine.search_service import SearchService
    from ranking.model import FallbackRanker, rank_many
    from rl.policy import FixedPolicy

    retrievers = {s: service_index.load(s) for s in ("popularity", "structured")}
    catalog = service_index.catalog()

    def fn(r):
        async def call(q, k) -> list[C]:
            return r.retrieve(q, k)
        return call

    async def rank(query, cands):
        return "fallback-rrf", rank_many(FallbackRanker(), [(query, cands)], catalog)[0]

    async def run():
        feedback = LocalFeedback(tmp_path, 2)
        svc = SearchService({s: fn(r) for s, r in retrievers.items()}, rank, feedback,
                            FixedPolicy(list(retrievers), {s: 10 for s in retrievers}, epsilon=0.0), service_index)
        ans = await svc.search("taylor swift love story", 5, user_id="u1")
        await svc.pipeline.drain()
        rid = ans.result.request_id
        shard = feedback.shard(rid)
        shard.export(tmp_path / "out")
        (logged,), _ = read_export(tmp_path / "out")
        shown = [i for i, _ in ans.result.ranked]
        card = next(h for h in ans.entities if h.entity.name == "Taylor Swift")
        related = {h.entity.id: list(h.via) for h in ans.related}
        assert logged.entities[0] == ShownEntity(entity_id=card.entity.id, role="card",
                                                 via=[i for i in shown if catalog[i].fields["artist"] == "Taylor Swift"])
        assert {e.entity_id: e.via for e in logged.entities if e.role == "related"} == related
        assert logged.entity_via()[card.entity.id]  # the query's artist was shown through its tracks
        ev = ent("e1", rid, card.entity.id, "click", 1)
        assert (await svc.add_events(rid, [ev])).accepted == 1
        with pytest.raises(BadEvent, match="was not shown"):
            await svc.add_events(rid, [ent("e2", rid, "artist:metallica", "click", 1)])
        assert shard.stats().entity_events == 1
        await svc.close()
    asyncio.run(run())
