"""Text normalisation shared by the strategies that match strings without Lucene
(memory, structured, explore): lower-case, accents folded, punctuation dropped."""
from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """'Tayler  Love!' -> 'tayler love'. Accents are folded so 'Beyoncé' matches 'beyonce'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NON_WORD.sub(" ", text.lower()).replace("_", " ")
    return _SPACE.sub(" ", text).strip()


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def ngrams(words: list[str], max_n: int = 3) -> list[tuple[int, int, str]]:
    """All word n-grams up to max_n as (start, end, text), longest first."""
    out = []
    for n in range(min(max_n, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            out.append((i, i + n, " ".join(words[i:i + n])))
    return out


def char_trigrams(text: str) -> set[str]:
    """Character trigrams of ' text ', used for fuzzy (misspelling-tolerant) matching."""
    padded = f" {text} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}
