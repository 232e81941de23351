"""Query understanding: which catalogue fields a query names, and what is left over.

"tayler swiftt love story 90s" -> artist=taylor swift (fuzzy, 0.64), title=love story
(exact), years 1990-1999. The structured strategy turns a parse into field constraints;
later code (bandit context features) asks which fields a query matched.

The dictionary holds the normalized values of the entity fields (title, artist, album)
and category fields (genre, mood). A parse covers the query's word n-grams, longest
first and without overlap, in three passes:
  1. exact dictionary matches (score 1.0), plus category synonyms (score 0.9);
  2. year constraints: "1998", "1990s", "90s", "80's" (a number that is also a
     catalogue value, like the album "1989", was already read as that value);
  3. fuzzy matches on what is still uncovered, by Dice similarity of character
     trigrams (score = similarity >= 0.5), most similar first, so "daft pank one more
     tim" is daft punk + one more time; shared trigrams are counted from a trigram
     inverted index, so no n-gram is compared with every value.
Uncovered words that are not stopwords are the free terms.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from core.model import Dataset, Item, Schema
from core.text import char_trigrams, ngrams, normalize

STOPWORDS = frozenset("a an and the of in on at to for by with from my me i you is it this that "
                      "some songs song music tracks track".split())

# Common ways to ask for a category value: query word -> candidate catalogue values.
# A synonym applies only to values some category field actually has.
CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "love": ("romantic",), "romance": ("romantic",),
    "relaxing": ("chill",), "relax": ("chill",), "calm": ("chill",), "mellow": ("chill",),
    "sad": ("melancholic", "melancholy"), "happy": ("upbeat", "happy"),
    "workout": ("energetic",), "gym": ("energetic",), "party": ("dance", "upbeat"),
    "hiphop": ("hip hop",), "rap": ("hip hop",), "edm": ("electronic",), "electro": ("electronic",),
}
EXACT_SCORE = 1.0
SYNONYM_SCORE = 0.9
FUZZY_THRESHOLD = 0.5  # minimum Dice similarity of character trigrams
FUZZY_MIN_CHARS = 4    # shorter n-grams are never matched fuzzily
FUZZY_MAX_WORDS = 4
FUZZY_MAX_POSITION = 12  # only the first words of a long query are matched fuzzily (bounded cost)
MAX_WORDS = 8          # longest value (in words) the exact pass looks for
CACHE_SIZE = 4096

_YEAR = re.compile(r"^(19|20)\d\d$")
_DECADE4 = re.compile(r"^((?:19|20)\d)0s$")
_DECADE2 = re.compile(r"^(\d)0s$")
_DECADE_BARE = re.compile(r"^((?:19|20)?\d)0$")  # "80" of "80's" (normalized to "80 s")


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """Query words [start, end) name `value` of `field`; kind is exact, synonym or fuzzy."""

    field: str
    value: str
    start: int
    end: int
    score: float
    kind: str = "exact"


@dataclass(frozen=True, slots=True)
class YearRange:
    """Query words [start, end) ask for release years lo..hi (inclusive)."""

    lo: int
    hi: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Parse:
    """The understood parts of a query. Immutable, so parses can be cached and shared."""

    text: str
    words: tuple[str, ...]
    matches: tuple[FieldMatch, ...]
    years: tuple[YearRange, ...]
    free_terms: tuple[str, ...]
    dictionary: str = ""  # `QueryUnderstanding.id` of the dictionary that made it (parses travel between processes)

    @property
    def understood(self) -> bool:
        return bool(self.matches or self.years)

    def fields(self) -> frozenset[str]:
        """Fields the query matched, plus "year" when it has a year constraint."""
        return frozenset(m.field for m in self.matches) | (frozenset({"year"}) if self.years else frozenset())


def _decade(prefix: str) -> int:
    """'199' -> 1990, '9' -> 1990, '0' -> 2000, '2' -> 2020."""
    if len(prefix) == 3:
        return int(prefix) * 10
    d = int(prefix)
    return (2000 if d <= 2 else 1900) + d * 10


def _year_at(words: list[str], i: int) -> tuple[int, int, int] | None:
    """A year constraint starting at word i: (lo, hi, words used), or None."""
    w = words[i]
    if _YEAR.match(w):
        return int(w), int(w), 1
    m = _DECADE4.match(w) or _DECADE2.match(w)
    if m:
        lo = _decade(m.group(1))
        return lo, lo + 9, 1
    m = _DECADE_BARE.match(w)
    if m and i + 1 < len(words) and words[i + 1] == "s":
        lo = _decade(m.group(1))
        return lo, lo + 9, 2
    return None


class QueryUnderstanding:
    """A dictionary of catalogue field values with exact, synonym, fuzzy and year matching."""

    def __init__(self, field_values: Mapping[str, Iterable[str]], category_fields: Iterable[str] = ()) -> None:
        self.category_fields = tuple(category_fields)
        self._fields: dict[str, list[str]] = {}  # normalized value -> fields that have it
        for field, values in field_values.items():
            for raw in values:
                value = normalize(raw)
                if value and field not in self._fields.get(value, ()):
                    self._fields.setdefault(value, []).append(field)
        self.max_words = min(MAX_WORDS, max((len(v.split()) for v in self._fields), default=1))
        categories = set(self.category_fields)
        self._synonyms: dict[str, list[tuple[str, str]]] = {}
        for word, targets in CATEGORY_SYNONYMS.items():
            found = [(f, t) for t in targets for f in self._fields.get(t, ()) if f in categories]
            if found:
                self._synonyms[word] = found
        # trigram inverted index over distinct values (value ids follow sorted value order)
        self._values: list[str] = sorted(self._fields)
        tri: dict[str, list[int]] = {}
        counts = []
        for vid, value in enumerate(self._values):
            grams = char_trigrams(value)
            counts.append(len(grams))
            for g in grams:
                tri.setdefault(g, []).append(vid)
        self._nvgrams = np.asarray(counts, dtype=np.int64)
        self._tri: dict[str, np.ndarray] = {g: np.asarray(ix, dtype=np.int32) for g, ix in tri.items()}
        self._cache: OrderedDict[str, Parse] = OrderedDict()
        self._cache_lock = threading.Lock()
        digest = hashlib.sha1(repr((sorted((v, tuple(f)) for v, f in self._fields.items()),
                                    self.category_fields)).encode("utf-8", "surrogatepass"))
        self.id = digest.hexdigest()[:16]  # the same values and fields give the same parses, in any process

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> QueryUnderstanding:
        return cls.from_items(dataset.items, dataset.schema)

    @classmethod
    def from_items(cls, items: Iterable[Item], schema: Schema) -> QueryUnderstanding:
        """The dictionary of the schema's entity and category fields over `items`."""
        items = list(items)
        fields = list(dict.fromkeys(schema.entity_fields + schema.category_fields))
        values = {f: {it.fields.get(f, "") or "" for it in items} for f in fields}
        return cls(values, schema.category_fields)

    def fields_of(self, value: str) -> tuple[str, ...]:
        """The fields in which a (normalized) value occurs."""
        return tuple(self._fields.get(normalize(value), ()))

    def __len__(self) -> int:
        return len(self._values)

    # -- matching ---------------------------------------------------------------------
    def fuzzy(self, text: str) -> tuple[str, float] | None:
        """The dictionary value most similar to `text` (Dice over character trigrams),
        with its similarity, or None below FUZZY_THRESHOLD. Ties: closest trigram count,
        then value. Shared-trigram counts come from one bincount over the postings of
        the text's trigrams. Only values sharing at least a third of the text's n trigrams
        can reach Dice 0.5 (2s / (n + nv) >= 1/2 with nv >= s gives s >= n/3), so only
        those are scored: at a million tracks (700k values) selecting them through a boolean
        mask took 35-65 % of the time of listing every value that shares one trigram."""
        grams = char_trigrams(text)
        postings = [self._tri[g] for g in grams if g in self._tri]
        n = len(grams)
        need = max(1, math.ceil(n * FUZZY_THRESHOLD / (2 - FUZZY_THRESHOLD) - 1e-9))  # fewest shared that can pass
        if len(postings) < need:
            return None
        shared = np.bincount(np.concatenate(postings), minlength=len(self._values))
        cand = np.flatnonzero(shared >= need)
        dice = 2.0 * shared[cand] / (n + self._nvgrams[cand])
        keep = dice >= FUZZY_THRESHOLD - 1e-12
        if not keep.any():
            return None
        cand, dice = cand[keep], dice[keep]
        best = np.lexsort((cand, np.abs(self._nvgrams[cand] - n), -dice))[0]
        return self._values[int(cand[best])], float(dice[best])

    def parse(self, text: str) -> Parse:
        """Parse a query (see the module docstring). Cached by normalized text."""
        norm = normalize(text)
        with self._cache_lock:
            hit = self._cache.get(norm)
            if hit is not None:
                self._cache.move_to_end(norm)
                return hit
        result = self._parse(norm)
        with self._cache_lock:
            self._cache[norm] = result
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def _parse(self, norm: str) -> Parse:
        words = norm.split()
        covered = [False] * len(words)
        matches: list[FieldMatch] = []

        def take(start: int, end: int) -> None:
            covered[start:end] = [True] * (end - start)

        # 1. exact values and synonyms, longest first
        for start, end, gram in ngrams(words, self.max_words):
            if any(covered[start:end]) or gram in STOPWORDS:
                continue
            found = [FieldMatch(f, gram, start, end, EXACT_SCORE) for f in self._fields.get(gram, ())]
            found += [FieldMatch(f, v, start, end, SYNONYM_SCORE, "synonym")
                      for f, v in self._synonyms.get(gram, ()) if (f, v) not in {(m.field, m.value) for m in found}]
            if found:
                matches.extend(found)
                take(start, end)
        # 2. years
        years: list[YearRange] = []
        for i in range(len(words)):
            if covered[i]:
                continue
            got = _year_at(words, i)
            if got and not any(covered[i:i + got[2]]):
                years.append(YearRange(got[0], got[1], i, i + got[2]))
                take(i, i + got[2])
        # 3. fuzzy matches on what is left: best similarity first, then longer, then earlier
        fuzzy: list[tuple[float, int, int, int, str]] = []
        for start, end, gram in ngrams(words[:FUZZY_MAX_POSITION], min(FUZZY_MAX_WORDS, len(words))):
            span = words[start:end]
            if any(covered[start:end]) or all(w in STOPWORDS or w.isdigit() for w in span):
                continue
            if len(gram.replace(" ", "")) < FUZZY_MIN_CHARS:
                continue
            best = self.fuzzy(gram)
            if best:
                fuzzy.append((-best[1], start - end, start, end, best[0]))
        for neg_sim, _, start, end, value in sorted(fuzzy):
            if not any(covered[start:end]):
                matches.extend(FieldMatch(f, value, start, end, -neg_sim, "fuzzy") for f in self._fields[value])
                take(start, end)
        matches.sort(key=lambda m: (m.start, m.field, m.value))
        free = tuple(w for w, c in zip(words, covered) if not c and w not in STOPWORDS)
        return Parse(norm, tuple(words), tuple(matches), tuple(years), free, self.id)
