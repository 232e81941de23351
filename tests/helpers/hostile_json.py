"""Hypothesis strategies for request bodies that Python's JSON parser accepts, written as raw
JSON text so that every form a JSON string or number may take reaches the server.

Strings: any code point, lone surrogates included, each character written in one of the
forms JSON allows: itself (UTF-8), `\\uXXXX` in lower or upper case hex, a surrogate pair
for characters beyond the BMP, or a short escape (`\\" \\\\ \\/ \\b \\f \\n \\r \\t`).
Numbers: integers far beyond 64 bits, `-0`, fractions and exponents (`1E+400` parses as
infinity), and the `NaN`, `Infinity` and `-Infinity` that Python's parser also accepts.
Values nest objects and arrays. `KINDS` names what is generated, for the reports.
"""
from __future__ import annotations

import json

from hypothesis import strategies as st

SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
KINDS = ("raw UTF-8 text", "\\uXXXX escapes (lower and upper hex)", "surrogate-pair escapes", "lone surrogates",
         "short escapes", "control characters and NUL", "integers beyond 64 bits", "-0, fractions, exponents",
         "1e400 (infinity)", "NaN / Infinity / -Infinity", "nested objects and arrays", "wrong JSON types")

chars = st.characters(min_codepoint=0, max_codepoint=0x10FFFF)  # every code point, surrogates included


# what a valid field may hold: every code point but lone surrogates (unencodable, so 422)
encodable = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",))


@st.composite
def json_char(draw, alphabet: st.SearchStrategy[str] = chars) -> str:
    """One character of `alphabet` as JSON text, in a form chosen by hypothesis."""
    c = draw(alphabet)
    cp = ord(c)
    forms = ["u", "U"]
    if c in SHORT:
        forms.append("short")
    if cp >= 0x20 and c not in '"\\' and not 0xD800 <= cp <= 0xDFFF:
        forms.append("raw")
    if cp > 0xFFFF:
        forms = ["pair", "raw"]
    form = draw(st.sampled_from(forms))
    if form == "raw":
        return c
    if form == "short":
        return SHORT[c]
    if form == "pair":
        hi, lo = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
        return draw(st.sampled_from([f"\\u{hi:04x}\\u{lo:04x}", f"\\u{hi:04X}\\u{lo:04X}"]))
    return f"\\u{cp:04x}" if form == "u" else f"\\u{cp:04X}"


def json_string(min_size: int = 0, max_size: int = 40,
                alphabet: st.SearchStrategy[str] = chars) -> st.SearchStrategy[str]:
    """A JSON string literal (with its quotes)."""
    return st.lists(json_char(alphabet), min_size=min_size, max_size=max_size).map(
        lambda cs: '"' + "".join(cs) + '"')


def plain_string(words: list[str]) -> st.SearchStrategy[str]:
    """Ordinary words as JSON literals, so some requests get past validation."""
    return st.sampled_from(words).map(json.dumps)


json_number = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10 ** 40), max_value=10 ** 40).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(lambda s: "inf" not in s and "nan" not in s),
    st.sampled_from(["-0", "0.0", "1e400", "-1e400", "1E+2", "5e-324", "NaN", "Infinity", "-Infinity", "1.0e0",
                     "4102444800.0001", "9007199254740993"]),
    st.integers(min_value=0, max_value=200).map(str),
)
json_scalar = st.one_of(json_string(), json_number, st.sampled_from(["true", "false", "null"]))


def _obj(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.lists(st.tuples(json_string(max_size=8), inner), max_size=4).map(_obj)), max_leaves=12)


def field(good: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A field's value: mostly what the schema wants (hostile text included), sometimes anything."""
    return st.one_of(good, good, good, json_value)


@st.composite
def search_body(draw, words: list[str]) -> str:
    text = st.one_of(json_string(min_size=1), plain_string(words))
    pairs = [('"query"', draw(field(text)))]
    if draw(st.booleans()):
        pairs.append(('"user_id"', draw(field(st.one_of(json_string(max_size=20), st.just("null"))))))
    if draw(st.booleans()):
        ctx = draw(st.lists(st.tuples(st.one_of(json_string(min_size=1, max_size=10), st.just('"ts"')),
                                      field(st.one_of(json_string(), json_number))), max_size=4))
        pairs.append(('"context"', draw(field(st.just(_obj(ctx))))))
    if draw(st.booleans()):
        pairs.append(('"k"', draw(field(st.one_of(json_number, st.integers(1, 100).map(str))))))
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(json_string(max_size=8)), draw(json_value)))
    return _obj(draw(st.permutations(pairs)))


@st.composite
def accepted_search_body(draw, words: list[str]) -> str:
    """A /search body the schema accepts, whose strings still take every escape form and any
    encodable code point: a real word leads the query (so it is never blank), and the context
    holds hostile keys and text. Sent beside `search_body`, so that a short run still stores
    many requests with hostile text for the export and training that follow."""
    tail = draw(json_string(max_size=20, alphabet=encodable))[1:-1]
    pairs = [('"query"', json.dumps(draw(st.sampled_from(words)))[:-1] + tail + '"')]
    if draw(st.booleans()):
        pairs.append(('"user_id"', draw(json_string(min_size=1, max_size=20, alphabet=encodable))))
    if draw(st.booleans()):
        keys = draw(st.lists(json_string(min_size=1, max_size=10, alphabet=encodable), max_size=4,
                             unique_by=lambda k: json.loads(k)))
        ctx = [(k, draw(st.one_of(json_string(alphabet=encodable), st.integers(-10 ** 6, 10 ** 6).map(str))))
               for k in keys if json.loads(k) != "ts"]
        pairs.append(('"context"', _obj(ctx)))
    pairs.append(('"k"', str(draw(st.integers(1, 100)))))
    return _obj(draw(st.permutations(pairs)))


@st.composite
def feedback_body(draw, request_ids: list[str], items: list[str]) -> str:
    """A /feedback body whose events mostly name an item; one in six names an entity instead,
    both or neither (a 422 unless the entity was shown)."""
    item = st.tuples(st.just('"item_id"'), field(st.one_of(plain_string(items), json_string())))
    entity = st.tuples(st.just('"entity_id"'), field(json_string()))
    target = st.one_of(st.just(()), st.tuples(entity), st.tuples(item, entity))

    def event() -> st.SearchStrategy[str]:
        return st.builds(lambda kvs, *kv: _obj([*kvs, *kv]),
                         st.integers(0, 5).flatmap(lambda n: target if n == 0 else st.tuples(item)),
                         st.tuples(st.just('"event_id"'), field(json_string(min_size=1))),
                         st.tuples(st.just('"type"'), field(st.sampled_from(['"click"', '"play"', '"like"',
                                                                              '"skip"']))),
                         st.tuples(st.just('"position"'), field(st.one_of(st.integers(1, 10).map(str),
                                                                          json_number))),
                         st.tuples(st.just('"ts"'), field(st.one_of(st.just("null"), json_number))))
    pairs = [('"request_id"', draw(field(st.one_of(plain_string(request_ids), json_string(min_size=1))))),
             ('"events"', draw(field(st.lists(event(), max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"))))]
    return _obj(pairs)
