"""A position-based click model over graded relevance: the project's stand-in for users.

Why: the bandit and the click-trained ranker need feedback, and real users are not
available. The position-based model (PBM) is the standard simple simulator: a user
examines the item at 1-based rank r with probability (1/r)**eta, and clicks an examined
item of grade g with probability

    noise + (1 - noise) * (2**g - 1) / (2**max_grade - 1)

so an irrelevant item (g = 0) is clicked with probability `noise`, and a perfect one
(g = max_grade) always is. `max_grade` is the top grade of the labels the users judge by
(`top_grade`): on binary labels (SciFact, Spotify) a relevant item is a perfect one. With the
default 3 there, an examined relevant item was clicked with probability 0.19 against an
irrelevant one's 0.05, so on SciFact (1.1 relevant documents per query), with the relevant one
ranked first on a page of 10, a third of the expected clicks were noise. A clicked item of
grade >= 2 is also "played" (listened to, read) with probability `play_prob`, a stronger
signal emitted as a second event.

Everything random comes from a numpy Generator: the model's own, seeded at construction,
or one the caller passes; the same seed and inputs give the same events.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.events import EventType


def top_grade(*qrels: Mapping[str, Mapping[str, int]]) -> int:
    """The highest relevance grade in these qrels (query -> item -> grade), at least 1: the
    `max_grade` of users who judge by them."""
    return max([1, *(int(g) for q in qrels for grades in q.values() for g in grades.values())])


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One simulated interaction. `grade` is the true relevance, kept for diagnostics only."""

    item_id: str
    position: int  # 1-based rank at which the item was shown
    type: EventType
    grade: int


class ClickModel:
    """Position-based click model; see the module docstring for the probabilities."""

    def __init__(self, eta: float = 1.0, noise: float = 0.05, max_grade: int = 3, seed: int = 0,
                 play_prob: float = 0.6) -> None:
        if not (isinstance(eta, (int, float)) and np.isfinite(eta) and eta > 0):
            raise ValueError(f"eta (position bias strength) must be a positive number, got {eta!r}")
        if not (isinstance(noise, (int, float)) and 0 <= noise < 1):
            raise ValueError(f"noise (click rate on irrelevant items) must be in [0, 1), got {noise!r}")
        if isinstance(max_grade, bool) or not isinstance(max_grade, int) or max_grade < 1:
            raise ValueError(f"max_grade must be an integer >= 1, got {max_grade!r}")
        if not (isinstance(play_prob, (int, float)) and 0 <= play_prob <= 1):
            raise ValueError(f"play_prob must be in [0, 1], got {play_prob!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.eta, self.noise, self.max_grade = float(eta), float(noise), max_grade
        self.play_prob, self.seed = float(play_prob), int(seed)
        self._rng = np.random.default_rng(self.seed)

    def examination_probability(self, position: int) -> float:
        """P(the user looks at the item at this 1-based position) = (1/position)**eta."""
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or position < 1:
            raise ValueError(f"position must be an integer >= 1, got {position!r}")
        return float((1.0 / position) ** self.eta)

    def click_probability(self, grade: int) -> float:
        """P(click | examined) for a relevance grade; grades are clipped to [0, max_grade]."""
        g = min(max(int(grade), 0), self.max_grade)
        return self.noise + (1.0 - self.noise) * (2.0 ** g - 1.0) / (2.0 ** self.max_grade - 1.0)

    def expected_ctr(self, ranked_ids: Sequence[str], qrels: dict[str, int]) -> list[float]:
        """The click probability of each position of a ranking: what `simulate` averages to."""
        return [self.examination_probability(r) * self.click_probability(qrels.get(i, 0))
                for r, i in enumerate(ranked_ids, start=1)]

    def simulate(self, ranked_ids: list[str], qrels: dict[str, int],
                 rng: np.random.Generator | None = None) -> list[ClickEvent]:
        """Events of one user on one shown ranking, in position order (a play follows its click).

        `qrels` maps item id -> grade; items missing from it are irrelevant (grade 0).
        Uses `rng` when given, else the model's own seeded generator (so repeated calls
        differ, and the sequence of calls is reproducible from `seed`)."""
        if isinstance(ranked_ids, str) or not isinstance(ranked_ids, Sequence):
            raise TypeError("ranked_ids must be a list of item ids, best first")
        if len(set(ranked_ids)) != len(ranked_ids):
            raise ValueError("ranked_ids contains the same item id more than once")
        if not isinstance(qrels, dict):
            raise TypeError("qrels must be a dict of item id -> relevance grade")
        gen = self._rng if rng is None else rng
        n = len(ranked_ids)
        draws = gen.random((n, 3))  # examine, click, play: one row per position, always drawn
        events: list[ClickEvent] = []
        for r, item_id in enumerate(ranked_ids, start=1):
            grade = min(max(int(qrels.get(item_id, 0)), 0), self.max_grade)
            u_exam, u_click, u_play = draws[r - 1]
            if u_exam >= self.examination_probability(r) or u_click >= self.click_probability(grade):
                continue
            events.append(ClickEvent(item_id=item_id, position=r, type="click", grade=grade))
            if grade >= 2 and u_play < self.play_prob:
                events.append(ClickEvent(item_id=item_id, position=r, type="play", grade=grade))
        return events
