"""Typo tolerance for single query words: correct a word to the closest catalogue word.

"tayler" is no catalogue word; "taylor" is, one substitution away. A `Speller` holds a
vocabulary (word -> how many items use it) and corrects a word that is not in it to the
vocabulary word at the smallest Damerau-Levenshtein distance (at most 1 for words of 4-5
characters, 2 for longer ones), ties to the more frequent word, then alphabetically.
Candidates come from a character-trigram inverted index (the words sharing most trigrams
with the typo), so no word is compared with the whole vocabulary.

Used by the lexical strategy (BM25 also searches the corrections of unknown words) and
the structured strategy (word-level matches inside entity values: "tayler" names every
artist whose name has the word "taylor").
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from core.text import char_trigrams

MIN_CHARS = 4        # shorter words are never corrected
CANDIDATES = 32      # words (most shared trigrams first) whose edit distance is computed
CACHE_SIZE = 8192


def max_distance(word: str) -> int:
    return 1 if len(word) <= 5 else 2


def edit_distance(a: str, b: str, cap: int = 3) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), stopping early past `cap`."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    prev2: list[int] | None = None
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > cap:
            return cap + 1
        prev2, prev = prev, cur
    return prev[-1]


class Speller:
    """Corrects words to a vocabulary's closest word (see the module docstring)."""

    def __init__(self, vocabulary: Mapping[str, int]) -> None:
        self.counts = {w: int(c) for w, c in vocabulary.items() if w}
        self._words = sorted(self.counts)
        postings: dict[str, list[int]] = {}
        for wid, word in enumerate(self._words):
            for g in char_trigrams(word):
                postings.setdefault(g, []).append(wid)
        self._tri = {g: np.asarray(ix, dtype=np.int32) for g, ix in postings.items()}
        self._cache: dict[str, tuple[str, int] | None] = {}

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    def __len__(self) -> int:
        return len(self._words)

    def correct(self, word: str) -> tuple[str, int] | None:
        """(closest vocabulary word, its edit distance) for a word outside the vocabulary;
        None for a known, short or numeric word, or when nothing is close enough."""
        if word in self.counts or len(word) < MIN_CHARS or word.isdigit():
            return None
        if word in self._cache:
            return self._cache[word]
        got = self._correct(word)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[word] = got
        return got

    def _correct(self, word: str) -> tuple[str, int] | None:
        postings = [self._tri[g] for g in char_trigrams(word) if g in self._tri]
        if not postings:
            return None
        shared = np.bincount(np.concatenate(postings), minlength=len(self._words))
        cand = np.flatnonzero(shared)
        cand = cand[np.argsort(-shared[cand], kind="stable")[:CANDIDATES]]
        limit = max_distance(word)
        best: tuple[int, int, str] | None = None
        for wid in cand:
            other = self._words[int(wid)]
            d = edit_distance(word, other, limit)
            if d <= limit and len(other) >= MIN_CHARS - 1:
                key = (d, -self.counts[other], other)
                if best is None or key < best:
                    best = key
        return (best[2], best[0]) if best else None
