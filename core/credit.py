"""What one feedback event says about the result items: the one rule every learner reads.

An item event is about its item. An entity event (a click on an entity card or a related
entity) is about the result items the entity was shown through, its `via`
(`RequestRecord.entity_via`): the top results that made an entity related, or, for a card,
the shown results that belong to it. Those items are what the retrieval strategies found;
the entity itself is no strategy's candidate. So:

- strategies' hits (`engine.feedback_stats`): a positive entity event is one hit for every
  strategy that found at least one via item, as a positive item event is one hit for every
  strategy that found the item;
- the bandit's reward (`rl.reward.acted_items`): the event's weight is SHARED over its via
  items, `weight / len(via)` each. The reward sums over the items a plan retrieves, so one
  entity click is worth at most what one click on an item is worth: a plan that found every
  via item gets the whole weight (each item discounted by its rank), a plan that found some
  gets their share, and an entity with many via items does not pay many times over. Per
  item, the largest credit among its events counts (as for item events);
- the ranker's labels (`ranking.groups.click_groups`): each via item gets the label of the
  event's type (`core.events.EVENT_LABELS`), not a share: a label is a relevance grade of
  one item, not a budget. A user who wants the artist wants each of its shown tracks to the
  degree a click says; per item the largest label counts. The labels sit at those items'
  shown positions, so the unbiased LambdaMART correction treats them as clicks there. That
  is an approximation: the user clicked the entity, not the list at those positions, so the
  examination the correction divides by is the list's, not the entity panel's. Its effect
  is bounded by the share of entity events in the log; modelling the panel's own
  examination would need a second bias estimate that XGBoost's objective does not have.

An entity shown through no result (a card whose items were not shown) credits nothing: it
is stored and counted, but no strategy found it and no result can be labelled by it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.records import EventRecord

__all__ = ["event_items", "event_shares"]


def event_items(event: EventRecord, via: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The result items `event` is about: its item, or its entity's via items (`via`: entity id ->
    via items of the event's request; an entity missing from it credits nothing)."""
    if event.entity_id is not None:
        return tuple(via.get(event.entity_id, ()))
    return (event.item_id,) if event.item_id is not None else ()


def event_shares(event: EventRecord, via: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """item -> the share of `event`'s weight it carries: 1 for an item event, 1/len(via) for each
    via item of an entity event (see the module docstring)."""
    items = event_items(event, via)
    return {i: 1.0 / len(items) for i in items} if items else {}
