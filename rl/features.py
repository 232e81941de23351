"""Context features: what the bandit sees about a query before it chooses a plan.

Why these: which strategy finds what the user wants depends on the kind of query
(an artist name favours structured and lexical search, a description favours dense
vectors, a misspelling favours fuzzy structured matching, a repeated query favours the
click-learned memory), on the user, and on how each strategy fared on this query
before. The vector has a fixed layout (`FEATURE_NAMES`) for any catalogue, so a policy
trained on one log serves the next one:

- query: length in characters and tokens, mean token length, digit, non-ASCII and
  stopword shares, a question flag, and two character/word n-gram statistics against
  the catalogue vocabulary: the share of the query's character trigrams and of its
  words that occur in the catalogue (misspelled or descriptive queries score low);
- language: a stopword-vote guess, one-hot over English / other known / unknown;
- query understanding (`retrievers.understanding`): entity-field matches (exact,
  fuzzy), category matches, a year constraint, the share of words covered, the best
  fuzzy score;
- time: hour of day and day of week as sine/cosine pairs (from `context["ts"]`, unix
  seconds, else the request time);
- user history (feedback aggregates): how many requests the user made, and per
  strategy the user's hit rate (positive events on items the strategy found, per
  request that called it);
- per-strategy history for this query (the same normalized text): how often it was
  asked, how many positive feedback events it got (log and "any": a query users acted
  on before is one the click-learned memory strategy now answers), and each strategy's
  hit rate on it;
- per-strategy global history (the action features): each strategy's hit rate over
  all traffic.

Hit rates are smoothed, (hits + 0) / (chosen + 1), so an unseen strategy reads 0.
"""
from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from core.model import Item, Schema
from core.text import char_trigrams, normalize
from retrievers import STRATEGIES
from retrievers.understanding import STOPWORDS, QueryUnderstanding

LANG_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and of to in is for with on that this what how why does are by from".split()),
    "es": frozenset("el la los las de del y en que para con por una un es canciones musica".split()),
    "de": frozenset("der die das und ist nicht mit fur ein eine zu den von im lieder".split()),
    "fr": frozenset("le la les et des du une un est pour avec dans sur chansons musique".split()),
    "pt": frozenset("o a os as e do da dos das em para com uma um musicas".split()),
}
QUESTION_WORDS = frozenset("what how why when where who which does do is are can".split())


@dataclass(frozen=True, slots=True)
class StrategyHistory:
    """Counts over past requests: requests seen, and per strategy how often it was called and hit."""

    requests: int = 0
    chosen: Mapping[str, int] = field(default_factory=dict)
    hits: Mapping[str, int] = field(default_factory=dict)
    events: int = 0  # feedback events (clicks, plays, ...) recorded in this scope

    @classmethod
    def from_json(cls, row: Mapping | None) -> StrategyHistory:
        row = row or {}
        return cls(int(row.get("requests", 0)), dict(row.get("chosen", {})), dict(row.get("hits", {})),
                   int(row.get("events", 0)))

    def rate(self, strategy: str) -> float:
        return self.hits.get(strategy, 0) / (self.chosen.get(strategy, 0) + 1.0)

    def __add__(self, other: StrategyHistory) -> StrategyHistory:
        def add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
            return {s: a.get(s, 0) + b.get(s, 0) for s in {*a, *b}}
        return StrategyHistory(self.requests + other.requests, add(self.chosen, other.chosen),
                               add(self.hits, other.hits), self.events + other.events)


@dataclass(frozen=True, slots=True)
class History:
    """What the feedback aggregates know when a request arrives (see FeedbackStats.context_history)."""

    user: StrategyHistory = StrategyHistory()
    query: StrategyHistory = StrategyHistory()
    overall: StrategyHistory = StrategyHistory()

    @classmethod
    def from_json(cls, row: Mapping | None) -> History:
        row = row or {}
        return cls(*(StrategyHistory.from_json(row.get(k)) for k in ("user", "query", "overall")))

    @classmethod
    def merge(cls, parts: Iterable[History]) -> History:
        """The sum of several feedback shards' histories (each shard holds a slice of the traffic)."""
        out = cls()
        for p in parts:
            out = cls(out.user + p.user, out.query + p.query, out.overall + p.overall)
        return out


def _names() -> list[str]:
    names = ["q_chars", "q_tokens", "q_mean_token_len", "q_digit_share", "q_non_ascii_share", "q_stopword_share",
             "q_question", "q_trigram_in_vocab", "q_words_in_vocab",
             "lang_en", "lang_other", "lang_unknown",
             "qu_entity_exact", "qu_entity_fuzzy", "qu_category", "qu_year", "qu_covered", "qu_best_fuzzy",
             "time_hour_sin", "time_hour_cos", "time_dow_sin", "time_dow_cos",
             "user_requests"]
    names += [f"user_rate_{s}" for s in STRATEGIES]
    names += ["query_requests", "query_events", "query_acted_before"] + [f"query_rate_{s}" for s in STRATEGIES]
    names += [f"overall_rate_{s}" for s in STRATEGIES]
    return names


FEATURE_NAMES: list[str] = _names()
DIM = len(FEATURE_NAMES)
#: The regime switch of the gain models (`rl.reward_model` split): users acted on this query before
REGIME_FEATURE = "query_acted_before"


def guess_language(words: list[str]) -> str:
    """'en', 'es', 'de', 'fr', 'pt' by stopword votes, or 'und' when no stopword decides."""
    votes = {lang: sum(w in sw for w in words) for lang, sw in LANG_STOPWORDS.items()}
    best = max(votes, key=lambda k: (votes[k], k == "en"))
    return best if votes[best] > 0 else "und"


class ContextFeaturizer:
    """Turns (query, history, time) into the fixed-layout vector of FEATURE_NAMES."""

    def __init__(self, understanding: QueryUnderstanding | None, vocabulary: Iterable[str]):
        self.understanding = understanding
        self.words = frozenset(vocabulary)
        self.trigrams = frozenset(g for w in self.words for g in char_trigrams(w))
        self.entity_fields: frozenset[str] = frozenset()
        self.category_fields: frozenset[str] = frozenset()

    @classmethod
    def from_catalog(cls, items: Iterable[Item], schema: Schema, max_vocab_items: int = 200_000) -> ContextFeaturizer:
        """Build from the catalogue: the query-understanding dictionary over entity and
        category fields, and the word vocabulary of the text fields."""
        items = list(itertools.islice(items, max_vocab_items))  # never the whole of a million-item catalogue
        qu = QueryUnderstanding.from_items(items, schema) if schema.entity_fields or schema.category_fields else None
        vocab: set[str] = set()
        for it in items:
            for f in schema.text_fields:
                vocab.update(normalize(it.fields.get(f, "") or "").split())
        out = cls(qu, vocab)
        out.entity_fields = frozenset(schema.entity_fields)
        out.category_fields = frozenset(schema.category_fields)
        return out

    def featurize(self, query: str, history: History | None = None, ts: float | None = None) -> np.ndarray:
        history = history or History()
        words = normalize(query).split()
        n = max(len(words), 1)
        chars = max(len(query), 1)
        grams = set().union(*(char_trigrams(w) for w in words)) if words else set()
        lang = guess_language(words)
        f: list[float] = [
            math.log1p(len(query)) / 5.0, math.log1p(len(words)) / 3.0, float(np.mean([len(w) for w in words])) / 10.0
            if words else 0.0,
            sum(c.isdigit() for c in query) / chars, sum(ord(c) > 127 for c in query) / chars,
            sum(w in STOPWORDS for w in words) / n, float((bool(words) and words[0] in QUESTION_WORDS) or "?" in query),
            (len(grams & self.trigrams) / len(grams)) if grams else 0.0,
            sum(w in self.words for w in words) / n,
            float(lang == "en"), float(lang not in ("en", "und")), float(lang == "und"),
        ]
        f += self._understanding(query, n)
        t = time.localtime(ts if ts is not None else time.time())
        hour = (t.tm_hour + t.tm_min / 60.0) / 24.0 * 2 * math.pi
        dow = t.tm_wday / 7.0 * 2 * math.pi
        f += [math.sin(hour), math.cos(hour), math.sin(dow), math.cos(dow)]
        for part in (history.user, history.query):
            f.append(math.log1p(part.requests) / 5.0)
            if part is history.query:  # users acted on this query before: the memory strategy has learned it
                f += [math.log1p(part.events) / 5.0, float(part.events > 0)]
            f += [part.rate(s) for s in STRATEGIES]
        f += [history.overall.rate(s) for s in STRATEGIES]
        out = np.asarray(f, dtype=np.float32)
        assert out.shape == (DIM,), (out.shape, DIM)
        return out

    def _understanding(self, query: str, n_words: int) -> list[float]:
        if self.understanding is None:
            return [0.0] * 6
        p = self.understanding.parse(query)
        ent = [m for m in p.matches if m.field in self.entity_fields]
        cat = [m for m in p.matches if m.field in self.category_fields]
        covered = sum(m.end - m.start for m in p.matches) + sum(y.end - y.start for y in p.years)
        fuzzy = [m.score for m in p.matches if m.kind == "fuzzy"]
        return [float(any(m.kind == "exact" for m in ent)), float(any(m.kind == "fuzzy" for m in ent)),
                float(bool(cat)), float(bool(p.years)), min(covered / n_words, 1.0), max(fuzzy, default=0.0)]

