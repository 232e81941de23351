"""`builtin:music-demo`: a seeded music catalogue and query log that the project makes itself.

Why synthetic: the project needs an embedded default that ships no third-party data
and whose queries are *designed* so that the best retrieval strategy differs by intent:

- `title`       exact titles              -> entity match (structured, memory) and BM25
- `artist`      artist names              -> entity match (structured, memory) and BM25
- `misspelled`  1-2 character typos       -> fuzzy or dense wins (every typo token is
                                             absent from the catalogue, so exact terms fail)
- `genre_mood`  "chill jazz", "love songs" -> structured match + popularity wins
                                             (judgments favour popular tracks)
- `descriptive` "relaxing music with sax for a drizzly evening" -> dense wins: the query's
                                             content words never occur in item text (the item
                                             says "A mellow ... with soft saxophone"); graded 3/2/1
                                             for mood + lead / second instrument / near mood

Everything is drawn from numpy generators seeded from `seed`, so the same arguments
always give the same catalogue (same `Dataset.fingerprint()`) and the same queries.
"""
from __future__ import annotations

import re

import numpy as np
from sortedcontainers import SortedSet

from core.errors import DatasetError
from core.model import Dataset, Item, QuerySet, Schema
from ingest.music_vocab import (  # noqa: F401 - re-exported
    ADJS,
    ARTIST_TEMPLATES,
    CONTEXTS,
    DESCRIPTIVE_TEMPLATES,
    FIRST,
    FORMS,
    GENRE_SAY,
    GENRE_TEMPLATES,
    GENRES,
    GERUNDS,
    INSTRUMENT_ADJS,
    INSTRUMENT_SYNONYMS,
    LAST,
    MOOD_PREF,
    MOOD_SAY,
    MOOD_TEMPLATES,
    MOOD_WORDS,
    MOODS,
    NEAR_MOODS,
    NOUNS,
    PAIR_TEMPLATES,
    STOPWORDS,
    TEMPOS,
)

NAME = "music-demo"
SPEC = "builtin:music-demo"
INTENTS = ("title", "artist", "misspelled", "genre_mood", "descriptive")
MAX_RELEVANT = 200  # relevant sets of category-like queries keep only the most popular tracks
TOP_GRADE2 = 20     # ... and the 20 most popular of those get grade 2

SCHEMA = Schema(
    text_fields={"title": 3.0, "artist": 2.0, "album": 1.0, "genre": 1.0, "mood": 1.0, "description": 1.0},
    category_fields=["genre", "mood"], entity_fields=["title", "artist", "album"],
    dense_fields=["title", "artist", "genre", "mood", "description"],
    entity_types={"artist": ["artist"], "album": ["album", "artist"]})

# genre -> (share of the catalogue, instruments by decreasing likelihood)
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words: how vocabulary and query tokens are compared here."""
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """A deliberately aggressive suffix stripper. Used to prove descriptive queries share no
    content word with the catalogue; stripping too much only makes that check stricter."""
    for suffix in ("ings", "ing", "ers", "er", "ies", "es", "ed", "ly", "s", "e", "y"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word[-1] == word[-2] else word


def generate(seed: int = 7, n_tracks: int = 3000, n_artists: int | None = None,
             n_train: int = 1200, n_test: int = 400) -> Dataset:
    """Build the catalogue and its `train`/`test` query splits.

    `n_artists` defaults to n_tracks / 12 (250 for the default 3,000 tracks), so a small
    catalogue (`builtin:music-demo?n_tracks=600`) needs no other argument.

    Each split draws from its own random stream; title and artist entities are partitioned
    between the splits (75/25) and no normalised query text occurs in both splits. Intents get
    equal shares; a very small catalogue may run out of distinct texts and yield fewer queries."""
    if n_artists is None:
        n_artists = max(4, n_tracks // 12)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if not 4 <= n_artists <= MAX_ARTISTS:
        raise DatasetError(f"n_artists must be between 4 and {MAX_ARTISTS}, got {n_artists}")
    if n_tracks < 3 * n_artists:
        raise DatasetError(f"n_tracks must be at least 3 * n_artists = {3 * n_artists}, got {n_tracks}")
    if min(n_train, n_test) < len(INTENTS):
        raise DatasetError(f"n_train and n_test must be at least {len(INTENTS)} (one query per intent)")
    items, instruments = _catalogue(_rng(seed, 0), n_tracks, n_artists)
    splits = _QueryMaker(items, instruments, seed).splits({"train": n_train, "test": n_test})
    defaults = (seed, n_tracks, n_artists, n_train, n_test) == (7, 3000, 250, 1200, 400)
    spec = SPEC if defaults else (f"{SPEC}?seed={seed}&n_tracks={n_tracks}&n_artists={n_artists}"
                                  f"&n_train={n_train}&n_test={n_test}")
    return Dataset(name=NAME, spec=spec, items=items, schema=SCHEMA, splits=splits)


# Name spaces. Up to len(FIRST) * len(LAST) artists are "First Last" (the original draw, unchanged);
# a larger catalogue (issue 15: a million tracks) draws "First Middle Last" names as well.
_PAIRS = len(FIRST) * len(LAST)
MAX_ARTISTS = _PAIRS * (1 + len(FIRST))
# distinct titles the two-word forms of `_name` can make; past half of it a catalogue also
# draws three-word titles (never reached at 3,000 tracks, so small catalogues are unchanged)
_BASE_TITLES = len(ADJS) * len(NOUNS) + 2 * len(NOUNS) ** 2 + len(GERUNDS) * len(NOUNS) + len(NOUNS)


def _artist_name(p: int) -> str:
    if p < _PAIRS:
        return f"{FIRST[p // len(LAST)]} {LAST[p % len(LAST)]}"
    middle, pair = divmod(p - _PAIRS, _PAIRS)
    return f"{FIRST[pair // len(LAST)]} {FIRST[middle]} {LAST[pair % len(LAST)]}"


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _pick(rng: np.random.Generator, options: list, weights=None):
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    return options[int(rng.choice(len(options), p=p))]


def _name(rng: np.random.Generator, used: SortedSet, single_ok: bool = False, reuse: float = 0.0) -> str:
    """A title or album name from the word lists: mostly unique, with a few deliberate repeats.
    `used` is kept sorted (a repeat is drawn from the sorted names, in O(log n) at a million)."""
    if used and rng.random() < reuse:
        return used[int(rng.choice(len(used)))]
    if len(used) > _BASE_TITLES // 2:
        return _long_name(rng, used)
    name = ""
    for _ in range(20):
        r = rng.random()
        if single_ok and r < .03:
            name = _pick(rng, NOUNS)
        elif r < .55:
            name = f"{_pick(rng, ADJS)} {_pick(rng, NOUNS)}"
        elif r < .72:
            a, b = rng.choice(len(NOUNS), 2, replace=False)
            name = f"{NOUNS[a]} {NOUNS[b]}"
        elif r < .84:
            name = f"{_pick(rng, NOUNS)} of {_pick(rng, NOUNS)}"
        else:
            name = f"{_pick(rng, GERUNDS)} {_pick(rng, NOUNS)}"
        if name not in used:
            break
    used.add(name)
    return name


def _long_name(rng: np.random.Generator, used: SortedSet) -> str:
    """A three-word title, for catalogues past the two-word space; after a few draws a repeat is
    kept (many songs share a title)."""
    name = ""
    for _ in range(3):
        r = rng.random()
        if r < .35:
            name = f"{_pick(rng, ADJS)} {_pick(rng, NOUNS)} {_pick(rng, NOUNS)}"
        elif r < .7:
            name = f"{_pick(rng, NOUNS)} of {_pick(rng, ADJS)} {_pick(rng, NOUNS)}"
        elif r < .85:
            name = f"{_pick(rng, ADJS)} {_pick(rng, NOUNS)} of {_pick(rng, NOUNS)}"
        else:
            name = f"{_pick(rng, GERUNDS)} {_pick(rng, ADJS)} {_pick(rng, NOUNS)}"
        if name not in used:
            break
    used.add(name)
    return name


def _catalogue(rng: np.random.Generator, n_tracks: int, n_artists: int) -> tuple[list[Item], list[tuple[str, str]]]:
    """Artists (genre, popularity effect), albums and tracks; returns items and each item's two instruments."""
    pairs = rng.choice(_PAIRS if n_artists <= _PAIRS else MAX_ARTISTS, n_artists, replace=False)
    artists = [_artist_name(int(p)) for p in pairs]
    genre_names = list(GENRES)
    primary = [_pick(rng, genre_names, [GENRES[g][0] for g in genre_names]) for _ in artists]
    effect = rng.normal(0.0, 1.0, n_artists)  # artist-level popularity: drives track counts and popularity
    weights = np.exp(0.5 * effect + rng.normal(0.0, 0.5, n_artists))
    counts = 3 + rng.multinomial(n_tracks - 3 * n_artists, weights / weights.sum())
    titles = SortedSet()
    rows: list[dict] = []
    for a, name in enumerate(artists):
        start = int(1960 + 58 * rng.beta(2.0, 1.3))
        n_albums = 1 + int(counts[a]) // 6
        years = sorted(int(y) for y in rng.integers(start, min(start + 20, 2023) + 1, n_albums))
        albums = [_name(rng, SortedSet()) for _ in range(n_albums)]
        n_new = int(rng.integers(2, 6)) if rng.random() < .12 else 0  # a recent release, not yet popular
        new_album, new_year = _name(rng, SortedSet()), int(rng.integers(2024, 2026))
        for t in range(int(counts[a])):
            new = t >= counts[a] - min(n_new, int(counts[a]) - 1)
            genre = primary[a] if rng.random() < .85 else _pick(rng, genre_names)
            mood = _pick(rng, list(MOODS), MOOD_PREF[genre])
            inst = GENRES[genre][1]
            w = np.array([1 / (k + 1) ** .7 for k in range(len(inst))])
            i1, i2 = (inst[int(i)] for i in rng.choice(len(inst), 2, replace=False, p=w / w.sum()))
            feel = _pick(rng, MOOD_WORDS[mood][0])
            desc = (f"{'An' if feel[0] in 'aeiou' else 'A'} {feel}, {_pick(rng, TEMPOS)} {genre} {_pick(rng, FORMS)} "
                    f"with {_pick(rng, INSTRUMENT_ADJS)} {i1} and {_pick(rng, INSTRUMENT_ADJS)} {i2}")
            album = int(rng.integers(n_albums))
            rows.append({"title": _name(rng, titles, single_ok=True, reuse=.03), "artist": name,
                         "album": new_album if new else albums[album], "genre": genre, "mood": mood,
                         "description": desc, "year": new_year if new else years[album],
                         "latent": effect[a] + rng.normal(0.0, 0.7) - (3.0 if new else 0.0), "inst": (i1, i2)})
    # Zipf popularity 100 * rank^-0.9 over the latent score (artist effect + track noise; new tracks sink).
    ranks = np.empty(len(rows), int)
    ranks[np.argsort([-r["latent"] for r in rows], kind="stable")] = np.arange(1, len(rows) + 1)
    order = rng.permutation(len(rows))  # ids do not reveal the artist grouping
    items = [Item(id=f"t{n:05d}", popularity=round(100.0 * float(ranks[i]) ** -0.9, 4), year=rows[i]["year"],
                  fields={k: rows[i][k] for k in ("title", "artist", "album", "genre", "mood", "description")})
             for n, i in enumerate(order)]
    return items, [rows[i]["inst"] for i in order]


def _typo(rng: np.random.Generator, word: str) -> str:
    """One character edit (swap, drop, replace or double), never on the first letter."""
    i = int(rng.integers(1, len(word)))
    op = int(rng.integers(4))
    if op == 0 and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == 1:
        return word[:i] + word[i + 1:]
    if op == 2:
        row = next((r for r in ("qwertyuiop", "asdfghjkl", "zxcvbnm") if word[i] in r), "aeiou")
        pool = "aeiou" if word[i] in "aeiouy" else row
        return word[:i] + _pick(rng, [c for c in pool if c != word[i]]) + word[i + 1:]
    return word[:i] + word[i] + word[i:]


class _QueryMaker:
    """Draws queries of each intent and their graded judgments from one catalogue."""

    def __init__(self, items: list[Item], instruments: list[tuple[str, str]], seed: int) -> None:
        self.items, self.instruments, self.seed = items, instruments, seed
        self.cache: dict[tuple[str, str, str], dict[str, int]] = {}  # judgments of category-like queries
        self.pop = np.array([it.popularity for it in items])
        self.vocab: dict[str, int] = {}  # word -> number of items using it
        for it in items:
            for w in set(words(" ".join(it.fields.values()))):
                self.vocab[w] = self.vocab.get(w, 0) + 1
        self.stems = {stem(w) for w in self.vocab}
        self.by_title, self.by_artist = self._group("title"), self._group("artist")
        self.by_genre, self.by_mood = self._group("genre", False), self._group("mood", False)
        self.by_instrument: dict[str, list[int]] = {}
        for n, pair in enumerate(instruments):
            for inst in pair:
                self.by_instrument.setdefault(inst, []).append(n)
        part = _rng(seed, 3)  # entity partition between the splits, shared by both
        self.parts = {"title": self._partition(part, self.by_title), "artist": self._partition(part, self.by_artist)}
        self.weights = {(kind, split): np.array([np.sqrt(self.pop[groups[k]].sum()) for k in keys]) + 1e-3
                        for kind, groups in (("title", self.by_title), ("artist", self.by_artist))
                        for split, keys in self.parts[kind].items()}

    def _group(self, field: str, normalise: bool = True) -> dict[str, list[int]]:
        """Item indexes by field value (normalised words for titles and names), most popular first."""
        groups: dict[str, list[int]] = {}
        for n, it in enumerate(self.items):
            value = it.fields[field]
            groups.setdefault(" ".join(words(value)) if normalise else value, []).append(n)
        return {k: sorted(v, key=lambda n: (-self.pop[n], n)) for k, v in groups.items()}

    @staticmethod
    def _partition(rng: np.random.Generator, groups: dict[str, list[int]]) -> dict[str, list[str]]:
        keys = sorted(groups)
        keys = [keys[int(i)] for i in rng.permutation(len(keys))]
        cut = max(1, round(.75 * len(keys)))
        return {"train": sorted(keys[:cut]), "test": sorted(keys[cut:])}

    def splits(self, sizes: dict[str, int]) -> dict[str, QuerySet]:
        used: set[str] = set()  # normalised texts already taken, by any split
        out = {}
        for stream, (split, n) in enumerate(sizes.items(), start=1):
            rng = _rng(self.seed, stream)
            rows: list[tuple[str, str, dict[str, int]]] = []
            for k, intent in enumerate(INTENTS):
                target = n // len(INTENTS) + (1 if k < n % len(INTENTS) else 0)
                make = getattr(self, f"_{intent}")
                got = 0
                for _ in range(200 * target):
                    if got == target:
                        break
                    made = make(rng, split)
                    key = made and " ".join(words(made[0]))
                    if made and made[1] and key and key not in used:
                        used.add(key)
                        rows.append((intent, made[0], made[1]))
                        got += 1
            rows = [rows[int(i)] for i in rng.permutation(len(rows))]
            qids = [f"{split}-{n:05d}" for n in range(len(rows))]
            out[split] = QuerySet(queries={q: r[1] for q, r in zip(qids, rows)},
                                  qrels={q: r[2] for q, r in zip(qids, rows)},
                                  intents={q: r[0] for q, r in zip(qids, rows)})
        return out

    # -- one method per intent: (query text, qrels) or None when the draw is unusable ------------
    def _entity(self, rng: np.random.Generator, kind: str, split: str) -> str:
        split = split if self.parts[kind].get(split) else "train"
        return _pick(rng, self.parts[kind][split], self.weights[kind, split])

    def _title_qrels(self, key: str) -> dict[str, int]:
        ids = [self.items[n].id for n in self.by_title[key]]
        return {i: 3 if r == 0 else 1 for r, i in enumerate(ids)}

    def _artist_qrels(self, key: str) -> dict[str, int]:
        return {self.items[n].id: 3 if r < 3 else 2 for r, n in enumerate(self.by_artist[key])}

    def _title(self, rng, split):
        key = self._entity(rng, "title", split)
        text = self.items[self.by_title[key][0]].fields["title"]
        return _pick(rng, [text.lower(), text, text.upper()], [.6, .3, .1]), self._title_qrels(key)

    def _artist(self, rng, split):
        key = self._entity(rng, "artist", split)
        name = self.items[self.by_artist[key][0]].fields["artist"]
        text = _pick(rng, ARTIST_TEMPLATES).format(a=name)
        return (text.lower() if rng.random() < .6 else text), self._artist_qrels(key)

    def _misspelled(self, rng, split):
        kind = "title" if rng.random() < .6 else "artist"
        key = self._entity(rng, kind, split)
        toks = key.split()
        cand = [i for i, w in enumerate(toks) if len(w) >= 4]
        if not cand:
            return None
        if len(cand) >= 2 and rng.random() < .7:
            chosen = [cand[int(i)] for i in rng.choice(len(cand), 2, replace=False)]
        else:  # one typo, in the rarest (most telling) word
            chosen = [min(cand, key=lambda i: (self.vocab.get(toks[i], 0), i))]
        for i in chosen:
            typos = [_typo(rng, toks[i]) for _ in range(10)]
            typos = [t for t in typos if t not in self.vocab and len(t) >= 3]
            if not typos:
                return None
            toks[i] = typos[0]
        return " ".join(toks), (self._title_qrels(key) if kind == "title" else self._artist_qrels(key))

    def _graded(self, members: list[int]) -> dict[str, int]:
        """The MAX_RELEVANT most popular members; the TOP_GRADE2 most popular get grade 2."""
        best = sorted(members, key=lambda n: (-self.pop[n], n))[:MAX_RELEVANT]
        return {self.items[n].id: 2 if r < TOP_GRADE2 else 1 for r, n in enumerate(best)} if len(best) >= 5 else {}

    def _genre_mood(self, rng, split):
        genre = _pick(rng, list(GENRES), [share for share, _ in GENRES.values()])
        mood = _pick(rng, list(MOODS))
        g, kind = _pick(rng, GENRE_SAY.get(genre, [genre])), rng.random()
        if kind < .6:
            text = _pick(rng, PAIR_TEMPLATES).format(m=mood, g=g)
            key = ("pair", genre, mood)
        elif kind < .8:
            text = _pick(rng, MOOD_TEMPLATES).format(m=_pick(rng, ["romantic", "love"]) if mood == "romantic" else mood)
            key = ("mood", "", mood)
        else:
            text = _pick(rng, GENRE_TEMPLATES).format(g=g)
            key = ("genre", genre, "")
        if key not in self.cache:  # judged once per key: at a million tracks a judgment scans 100k items
            if key[0] == "pair":
                members = [n for n in self.by_genre.get(genre, []) if self.items[n].fields["mood"] == mood]
            else:
                members = self.by_mood.get(mood, []) if key[0] == "mood" else self.by_genre.get(genre, [])
            self.cache[key] = self._graded(members)
        return text, dict(self.cache[key])

    def _descriptive(self, rng, split):
        """Grade 3: the mood and the lead instrument; 2: the mood and the second instrument;
        1: a neighbouring mood (chill ~ dreamy) with the instrument."""
        mood, inst = _pick(rng, list(MOODS)), _pick(rng, sorted(INSTRUMENT_SYNONYMS))
        text = _pick(rng, DESCRIPTIVE_TEMPLATES).format(
            m=_pick(rng, MOOD_WORDS[mood][1]), i=_pick(rng, INSTRUMENT_SYNONYMS[inst]),
            c=_pick(rng, CONTEXTS[mood] + [""]))
        text = " ".join(text.split())
        if any(stem(w) in self.stems for w in words(text) if w not in STOPWORDS):
            return None  # a content word the catalogue uses would let exact matching in
        key = ("descriptive", mood, inst)
        if key not in self.cache:  # judged once per (mood, instrument), as for _genre_mood
            self.cache[key] = self._descriptive_qrels(mood, inst)
        return (text, dict(self.cache[key])) if self.cache[key] else None

    def _descriptive_qrels(self, mood: str, inst: str) -> dict[str, int]:
        graded = []
        for n in self.by_instrument.get(inst, []):
            m = self.items[n].fields["mood"]
            grade = (3 if self.instruments[n][0] == inst else 2) if m == mood else 1 if m in NEAR_MOODS[mood] else 0
            if grade:
                graded.append((-grade, -self.pop[n], n))
        if sum(1 for g, _, _ in graded if g <= -2) < 5:
            return {}
        return {self.items[n].id: -g for g, _, n in sorted(graded)[:MAX_RELEVANT]}
