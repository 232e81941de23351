"""Structured retrieval: answer the fields a query names, not its words.

"tayler swiftt 90s" is parsed by QueryUnderstanding into artist=taylor swift and years
1990-1999; this strategy returns the items having those field values. Each understood
query span is one constraint; an item earns, per span, the best of match score x field
weight (title 3, artist 2, album 1, category 1) over the fields the span matched literally
(exact, fuzzy or word matches), plus the best over its synonym matches (the words as typed
and what they suggest are separate evidence: "love" in the title "Kingdom Love" and "love"
suggesting the romantic mood), and items meeting more constraints rank first:

    score = constraints met + s / (1 + s),   s = sum of span scores + 0.01 * log1p(popularity)

so the integer part counts constraints and scores decrease with rank.

Word-level matches make it tolerant of partial names and typos: each single query word
(not a stopword) that is a word of an entity value ("love" in "Kingdom Love"), or whose
spelling correction is ("tayler" -> "taylor" in "Taylor Whitfield", see `spelling`),
matches every item with such a value, at WORD_SCORE (x 0.8 per edit), whatever the field. Such
a match joins the span of a one-word match (so "love" meets the same constraint as the
title "Love", less strongly); it makes a span of its own only for a corrected word, or
when nothing else in the query was understood (a known word next to understood ones, like
"hits" in "upbeat pop hits", adds no constraint). So "tayler love" ranks the Taylors'
love songs, which meet two constraints, above the title "Love". Year constraints
filter the candidates, unless no candidate meets them (then they are dropped); a query
that is only a year returns that period's items by popularity. A query with nothing
understood returns [] - this strategy abstains.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import IndexError_
from core.model import Dataset
from core.records import Candidate
from core.text import normalize
from retrievers.base import Query, Retriever
from retrievers.spelling import Speller
from retrievers.storage import read_json, read_manifest, write_json, write_manifest
from retrievers.understanding import STOPWORDS, FieldMatch, Parse, QueryUnderstanding

FIELD_WEIGHTS: dict[str, float] = {"title": 3.0, "name": 3.0, "artist": 2.0, "album": 1.0}
CATEGORY_WEIGHT = 1.0
POPULARITY_TIEBREAK = 0.01
WORD_SCORE = 0.3       # a query word that is one word of an entity value (any field: below every exact match)
TYPO_DISCOUNT = 0.8    # per edit of a corrected word
MIN_WORD_CHARS = 3
FORMAT = 1


class StructuredRetriever(Retriever):
    """Field-value postings queried through QueryUnderstanding."""

    name = "structured"
    uses_parse = True

    def __init__(self, ids: list[str], popularity: list[float], years: list[int | None],
                 postings: dict[str, dict[str, list[int]]], weights: dict[str, float],
                 category_fields: list[str], fingerprint: str = "") -> None:
        self.fingerprint = fingerprint
        self._ids = list(ids)
        n = len(self._ids)
        if len(popularity) != n or len(years) != n:
            raise IndexError_("structured index is malformed: ids, popularity and years differ in length")
        self._tiebreak = POPULARITY_TIEBREAK * np.log1p(np.maximum(np.asarray(popularity, dtype=np.float64), 0.0))
        self._years = np.asarray([-1 if y is None else int(y) for y in years], dtype=np.int64)
        self._id_rank = np.empty(n, dtype=np.int64)
        self._id_rank[np.argsort(np.asarray(self._ids, dtype=object), kind="stable")] = np.arange(n)
        self._postings = {f: {v: np.asarray(ix, dtype=np.int64) for v, ix in values.items()}
                          for f, values in postings.items()}
        self._weights = dict(weights)
        self.understanding = QueryUnderstanding({f: list(v) for f, v in postings.items()}, category_fields)
        self._words = self._word_postings({f: v for f, v in self._postings.items() if f not in category_fields})
        counts: dict[str, int] = {}
        for by_word in self._words.values():
            for w, ix in by_word.items():
                counts[w] = counts.get(w, 0) + len(ix)
        self.speller = Speller(counts)

    @staticmethod
    def _word_postings(postings: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
        """field -> word -> items whose value of that field has the word (entity fields only)."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for f, values in postings.items():
            acc: dict[str, list[np.ndarray]] = {}
            for value, ix in values.items():
                for w in set(value.split()):
                    if len(w) >= MIN_WORD_CHARS and w not in STOPWORDS:
                        acc.setdefault(w, []).append(ix)
            out[f] = {w: np.unique(np.concatenate(parts)) for w, parts in acc.items()}
        return out

    # -- build / persist ------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, out_dir: Path) -> None:
        schema = dataset.schema
        fields = list(dict.fromkeys(schema.entity_fields + schema.category_fields))
        postings: dict[str, dict[str, list[int]]] = {f: {} for f in fields}
        for ix, item in enumerate(dataset.items):
            for f in fields:
                value = normalize(item.fields.get(f, "") or "")
                if value:
                    postings[f].setdefault(value, []).append(ix)
        weights = {f: FIELD_WEIGHTS.get(f, CATEGORY_WEIGHT if f in schema.category_fields
                                        else float(schema.text_fields.get(f, 1.0))) for f in fields}
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
        write_json(out / "items.json", {"ids": [it.id for it in dataset.items],
                                         "popularity": [max(0.0, it.popularity) for it in dataset.items],
                                         "years": [it.year for it in dataset.items]})
        write_json(out / "postings.json", postings)
        write_manifest(out, cls.name, FORMAT, dataset.fingerprint(), n_items=len(dataset.items), weights=weights,
                       category_fields=list(schema.category_fields))

    @classmethod
    def load(cls, out_dir: Path) -> StructuredRetriever:
        out = Path(out_dir)
        manifest = read_manifest(out, cls.name, FORMAT)
        items = read_json(out / "items.json")
        postings = read_json(out / "postings.json")
        try:
            return cls(items["ids"], items["popularity"], items["years"], postings, manifest["weights"],
                       manifest["category_fields"], manifest.get("fingerprint", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexError_(f"structured index at {out} is malformed ({exc}); rebuild it") from None

    # -- retrieval ------------------------------------------------------------------
    def parse(self, text: str, given: Parse | None = None) -> Parse:
        """The query-understanding parse this strategy acts on: `given` (made upstream, e.g. by
        the orchestrator for the bandit's features) when the same dictionary made it, else its own."""
        if given is not None and given.dictionary == self.understanding.id and given.text == normalize(text):
            return given
        return self.understanding.parse(text)

    def _year_mask(self, parse: Parse) -> np.ndarray | None:
        if not parse.years:
            return None
        mask = np.zeros(len(self._ids), dtype=bool)
        for yr in parse.years:
            mask |= (self._years >= yr.lo) & (self._years <= yr.hi)
        return mask

    def _word_matches(self, parse: Parse) -> list[FieldMatch]:
        """Single query words found inside entity values, directly or after spelling correction,
        on words that no multi-word match or year covers."""
        blocked = {i for m in parse.matches if m.end - m.start > 1 for i in range(m.start, m.end)}
        blocked |= {i for y in parse.years for i in range(y.start, y.end)}
        single = {m.start for m in parse.matches if m.end - m.start == 1}
        out = []
        for i, w in enumerate(parse.words):
            if i in blocked or w in STOPWORDS or len(w) < MIN_WORD_CHARS or w.isdigit():
                continue
            score, word = WORD_SCORE, w
            if w not in self.speller:
                fixed = self.speller.correct(w)
                if fixed is None:
                    continue
                word, score = fixed[0], WORD_SCORE * TYPO_DISCOUNT ** fixed[1]
            elif i not in single and parse.understood:
                continue  # a known word beside understood ones ("hits" of "upbeat pop hits") adds no constraint
            out += [FieldMatch(f, word, i, i + 1, score, "word") for f, by_word in self._words.items()
                    if word in by_word]
        return out

    def _retrieve(self, query: Query, k: int) -> list[Candidate]:
        parse = self.parse(query.text, query.parse)
        if not self._ids:
            return []
        words = self._word_matches(parse)
        if not parse.understood and not words:
            return []
        n = len(self._ids)
        spans: dict[tuple[int, int], list[FieldMatch]] = {}
        for m in list(parse.matches) + words:
            spans.setdefault((m.start, m.end), []).append(m)
        total = np.zeros(n, dtype=np.float64)
        met = np.zeros(n, dtype=np.int64)
        for matches in spans.values():
            found = [(m, ix, m.score * (1.0 if m.kind == "word" else self._weights.get(m.field, 1.0))) for m in matches
                     if (ix := (self._words if m.kind == "word" else self._postings).get(m.field, {}).get(m.value))
                     is not None and len(ix)]
            if len(found) == 1:  # one posting (the common case): touch only its items, same sums
                _, ix, value = found[0]
                if value > 0:  # as max(0, value) below
                    total[ix] += value  # an item is in a posting once
                    met[ix] += 1
                continue
            literal, synonym = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.float64)
            for m, ix, value in found:
                best = synonym if m.kind == "synonym" else literal
                best[ix] = np.maximum(best[ix], value)
            total += literal + synonym  # the words as typed and what they suggest are two pieces of evidence
            met += (literal + synonym) > 0
        mask = self._year_mask(parse)
        if mask is not None:
            if not spans:
                met = mask.astype(np.int64)  # only years: every item of the period qualifies
            else:
                keep = (met > 0) & mask
                if keep.any():  # the year filters, and counts as one more constraint met
                    met = np.where(keep, met + 1, 0)
        cand = np.flatnonzero(met)
        if not len(cand):
            return []
        s = total[cand] + self._tiebreak[cand]
        final = met[cand] + s / (1.0 + s)
        order = np.lexsort((self._id_rank[cand], -final))[:k]
        return [Candidate.of(self.name, self._ids[cand[j]], r, float(final[j]),
                             {"constraints": float(met[cand[j]]), "match_score": float(total[cand[j]])})
                for r, j in enumerate(order, 1)]
