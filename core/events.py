"""Feedback events: their types, which of them mean "the user wanted this item", and
what each is worth. These are the only tables of event weights and labels in ltrr; the
memory strategy's updates, the bandit's reward, the ranker's click labels, the bench's
simulated users and the feedback aggregates all read them. An event is on an item or on
an entity shown beside the items; what an entity event credits is `core.credit`'s rule.

Why these weights: a play (the user listened or read on) says more than a click, a like
says more than a play, and a skip says the item was wrong for the query. The memory
strategy adds the weight of each event to its query -> item score, so a skip lowers it;
the bandit's reward credits a plan with the largest weight among an item's events
(`rl.reward.acted_items`), so an item that was only skipped costs the plan that found it.
"""
from __future__ import annotations

from typing import Literal, get_args

EventType = Literal["click", "play", "like", "skip"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

#: What one event of each type is worth.
EVENT_WEIGHTS: dict[str, float] = {"click": 1.0, "play": 2.0, "like": 3.0, "skip": -0.5}

#: The ranker's relevance grade of an item from one event on it (LambdaMART labels are
#: integer grades; the largest over an item's events counts). A skip is no relevance.
EVENT_LABELS: dict[str, int] = {"click": 1, "play": 2, "like": 3, "skip": 0}

#: Event types that mean "the user wanted this item": they count as hits for the
#: strategies that found it, and as clicked items in a user's history.
POSITIVE_TYPES: frozenset[str] = frozenset(t for t, w in EVENT_WEIGHTS.items() if w > 0)

assert set(EVENT_WEIGHTS) == set(EVENT_TYPES), "every event type needs a weight"
assert set(EVENT_LABELS) == set(EVENT_TYPES), "every event type needs a ranker label"
