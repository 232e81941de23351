"""A tiny hand-made music catalogue for the strategy tests: known artists, albums,
genres, moods, years and popularity, so tests can assert exact ids and orders."""
from __future__ import annotations

from core.model import Dataset, Item, QuerySet, Schema

# id, title, artist, album, genre, mood, year, popularity
ROWS: list[tuple[str, str, str, str, str, str, int, float]] = [
    ("t01", "Love Story", "Taylor Swift", "Fearless", "pop", "romantic", 2008, 95),
    ("t02", "Shake It Off", "Taylor Swift", "1989", "pop", "upbeat", 2014, 98),
    ("t03", "Blank Space", "Taylor Swift", "1989", "pop", "upbeat", 2014, 90),
    ("t04", "Cardigan", "Taylor Swift", "Folklore", "indie", "melancholic", 2020, 80),
    ("t05", "So What", "Miles Davis", "Kind of Blue", "jazz", "chill", 1959, 70),
    ("t06", "Blue in Green", "Miles Davis", "Kind of Blue", "jazz", "melancholic", 1959, 40),
    ("t07", "Don't Know Why", "Norah Jones", "Come Away with Me", "jazz", "romantic", 2002, 75),
    ("t08", "Come Away with Me", "Norah Jones", "Come Away with Me", "jazz", "chill", 2002, 50),
    ("t09", "Get Lucky", "Daft Punk", "Random Access Memories", "electronic", "upbeat", 2013, 92),
    ("t10", "Around the World", "Daft Punk", "Homework", "electronic", "energetic", 1997, 60),
    ("t11", "One More Time", "Daft Punk", "Discovery", "electronic", "energetic", 2000, 85),
    ("t12", "Hello", "Adele", "25", "pop", "melancholic", 2015, 93),
    ("t13", "Someone Like You", "Adele", "21", "pop", "melancholic", 2011, 88),
    ("t14", "Skinny Love", "Bon Iver", "For Emma, Forever Ago", "indie", "melancholic", 2007, 55),
    ("t15", "Holocene", "Bon Iver", "Bon Iver", "indie", "chill", 2011, 35),
    ("t16", "Enter Sandman", "Metallica", "Metallica", "metal", "energetic", 1991, 82),
    ("t17", "Nothing Else Matters", "Metallica", "Metallica", "metal", "romantic", 1991, 78),
    ("t18", "Take Five", "Dave Brubeck Quartet", "Time Out", "jazz", "chill", 1959, 45),
    ("t19", "Teardrop", "Massive Attack", "Mezzanine", "electronic", "chill", 1998, 52),
    ("t20", "Windowlicker", "Aphex Twin", "Windowlicker", "electronic", "energetic", 1999, 20),
    ("t21", "Midnight Rain", "Luna Vale", "Quiet Hours", "indie", "chill", 2024, 3),
    ("t22", "Paper Boats", "Luna Vale", "Quiet Hours", "indie", "romantic", 2024, 2),
    ("t23", "Neon Rivers", "The Static Hum", "Neon Rivers", "electronic", "energetic", 2023, 5),
    ("t24", "Velvet Morning", "Iris Quinn", "Velvet", "jazz", "romantic", 2019, 8),
    ("t25", "Slow Tide", "Iris Quinn", "Velvet", "jazz", "chill", 2019, 6),
    ("t26", "Lovesong", "Adele", "21", "pop", "romantic", 2011, 30),
    ("t27", "Story of My Life", "One Direction", "Midnight Memories", "pop", "upbeat", 2013, 65),
    ("t28", "Dusty Roads", "Hollow Pines", "Dusty Roads", "folk", "melancholic", 2016, 4),
    ("t29", "Glass Garden", "Hollow Pines", "Dusty Roads", "folk", "chill", 2016, 7),
    ("t30", "Red", "Taylor Swift", "Red", "pop", "romantic", 2012, 85),
    ("t31", "Sunlit Avenue", "Marlo Keys", "Sunlit Avenue", "pop", "upbeat", 2024, 62),
]

SCHEMA = Schema(
    text_fields={"title": 3, "artist": 2, "album": 1, "genre": 1, "mood": 1},
    category_fields=["genre", "mood"],
    entity_fields=["title", "artist", "album"],
    dense_fields=["title", "artist", "genre", "mood"],
)


def tiny_dataset() -> Dataset:
    """31 tracks: a few stars (Taylor Swift, Adele, Daft Punk), jazz classics, and
    obscure or brand-new tracks (2023-2024, popularity < 10) for the long tail."""
    items = [Item(id=i, fields={"title": t, "artist": a, "album": al, "genre": g, "mood": m},
                  popularity=float(p), year=y)
             for i, t, a, al, g, m, y, p in ROWS]
    queries = QuerySet(queries={"q1": "love story"}, qrels={"q1": {"t01": 2}})
    return Dataset(name="tiny", spec="tests:tiny", items=items, schema=SCHEMA, splits={"test": queries})
