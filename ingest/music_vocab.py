"""The vocabulary of `builtin:music-demo`: genres, moods, instruments, name parts and
query templates. Data only; `music_demo.py` draws from it with seeded generators."""
from __future__ import annotations

GENRES: dict[str, tuple[float, list[str]]] = {
    "pop": (.16, ["synthesizer", "piano", "acoustic guitar", "drum machine", "bass"]),
    "rock": (.14, ["electric guitar", "drums", "bass", "organ", "piano"]),
    "hip hop": (.13, ["drum machine", "turntables", "bass", "synthesizer", "piano"]),
    "electronic": (.11, ["synthesizer", "drum machine", "bass", "piano"]),
    "r&b": (.09, ["piano", "bass", "synthesizer", "saxophone", "organ"]),
    "latin": (.09, ["acoustic guitar", "trumpet", "congas", "accordion", "bass"]),
    "country": (.08, ["acoustic guitar", "banjo", "violin", "bass", "drums"]),
    "jazz": (.07, ["saxophone", "piano", "trumpet", "bass", "drums"]),
    "metal": (.07, ["electric guitar", "drums", "bass"]),
    "classical": (.06, ["violin", "cello", "piano", "flute", "harp"]),
}
MOODS = ("chill", "happy", "sad", "energetic", "romantic", "dark", "dreamy", "angry")
MOOD_PREF = {  # genre -> weights over MOODS
    "pop": [2, 4, 2, 3, 4, .5, 2, .5], "rock": [1, 2, 2, 4, 1, 2, 1, 3], "jazz": [5, 2, 2, 1, 3, 1, 2, .2],
    "hip hop": [2, 2, 1, 4, 2, 2, .5, 3], "electronic": [3, 3, .5, 5, .5, 2, 4, .5],
    "classical": [4, 1, 3, 1, 2, 2, 4, .3], "country": [2, 4, 4, 2, 3, .5, .5, .5],
    "r&b": [3, 2, 2, 1, 5, 1, 2, .3], "latin": [1, 4, 1, 4, 4, .3, .5, .3], "metal": [.2, .3, 1, 4, .2, 4, .5, 5]}
# mood -> (words written in descriptions, paraphrases used only in descriptive queries). Chosen so that
# MiniLM puts each paraphrase nearer its own mood's words than any other's, with no shared stem.
MOOD_WORDS = {
    "chill": (["calm", "serene", "mellow"], ["soothing", "peaceful", "relaxing", "restful"]),
    "happy": (["cheerful", "playful", "joyous"], ["joyful", "delighted", "cheery", "feel-good"]),
    "sad": (["mournful", "sorrowful", "tearful"], ["grieving", "weepy", "depressing", "heartbroken"]),
    "energetic": (["pulsing", "vigorous", "intense"], ["adrenaline-fueled", "pumped-up", "powerful", "workout"]),
    "romantic": (["intimate", "affectionate", "tender"], ["valentine", "sensual", "heartfelt", "amorous"]),
    "dark": (["haunting", "eerie", "menacing"], ["creepy", "spooky", "sinister", "ominous"]),
    "dreamy": (["ethereal", "spacey", "atmospheric"], ["floaty", "celestial", "otherworldly", "cloudlike"]),
    "angry": (["aggressive", "snarling", "furious"], ["enraged", "hostile", "rage-filled", "wrathful"])}
NEAR_MOODS = {"chill": {"dreamy", "romantic"}, "dreamy": {"chill"}, "romantic": {"chill"}, "happy": {"energetic"},
              "energetic": {"happy", "angry"}, "angry": {"energetic", "dark"}, "dark": {"angry", "sad"},
              "sad": {"dark"}}
INSTRUMENT_SYNONYMS = {  # paraphrases used only in descriptive queries; instruments without a clear one get none
    "saxophone": ["sax", "tenor sax", "a saxophonist"], "piano": ["a pianist"], "electric guitar": ["power chords"],
    "violin": ["a violinist", "fiddle"], "cello": ["a cellist"], "synthesizer": ["synths", "synth pads"],
    "bass": ["a bassline", "basslines"], "harp": ["a harpist"], "banjo": ["a banjoist"],
    "accordion": ["an accordionist"], "turntables": ["a turntablist"]}
CONTEXTS = {
    "chill": ["for a drizzly evening", "to study to", "on a lazy afternoon"],
    "happy": ["for a picnic", "to start the morning"], "sad": ["after a breakup", "for crying alone"],
    "energetic": ["for the gym", "to work out to"], "romantic": ["for a dinner date", "for a candlelit dinner"],
    "dark": ["for a halloween party", "for a thriller scene"], "dreamy": ["for stargazing", "before bed"],
    "angry": ["for blowing off steam", "for a bad day"]}
DESCRIPTIVE_TEMPLATES = ["{m} music with {i} {c}", "something {m} with {i}", "{m} vibes with {i}",
                         "i need {m} music with {i} {c}", "{m} stuff featuring {i}"]
GENRE_SAY = {"hip hop": ["hip hop", "rap"], "electronic": ["electronic", "edm"], "r&b": ["r&b", "rnb"],
             "metal": ["metal", "heavy metal"]}
MOOD_SAY = {"romantic": ["romantic", "love"]}
PAIR_TEMPLATES = ["{m} {g}", "{m} {g} music", "{m} {g} songs", "{m} {g} playlist", "best {m} {g}"]
MOOD_TEMPLATES = ["{m} songs", "{m} music", "{m} playlist", "{m} tracks"]
GENRE_TEMPLATES = ["{g} music", "{g} songs", "best {g}", "{g} hits", "{g}"]
ARTIST_TEMPLATES = ["{a}", "{a}", "{a}", "{a} songs", "songs by {a}", "best of {a}"]
TEMPOS = ["slow", "mid-tempo", "uptempo", "fast", "steady", "swinging"]
FORMS = ["tune", "track", "piece", "number", "cut", "jam"]
INSTRUMENT_ADJS = ["soft", "warm", "gritty", "crisp", "lush", "sparse", "rich", "subtle", "heavy", "brushed"]
FIRST = ("Taylor Marcus Elena Jordan Maya Diego Nina Oscar Lena Felix Sofia Isaac Chloe Rafael Ava Malik Iris "
         "Theo Zara Hugo Leah Dante Ruby Nico Jade Miles Aria Caleb Naomi Jasper Lucia Owen Selena Andre Hazel "
         "Mateo Clara Jonah Imani Kai Vera Silas Talia Rowan Esme Gideon Priya Luca").split()
LAST = ("Lovell Reyes Carter Quinn Alvarez Brooks Sinclair Okafor Hart Moreau Delgado Whitfield Nakamura "
        "Fontaine Castillo Barnes Kowalski Ashford Vance Mercer Santos Holloway Laurent Pierce Odell Navarro "
        "Calloway Ferreira Lindqvist Marsh Bishop Romero Hale Keane Monroe Adler Sterling Vega Rhodes Baptiste "
        "Winslow Caruso Abernathy Kendrick Dubois Sorensen Blackwood Tanaka").split()
ADJS = ("Golden Midnight Silver Broken Electric Wild Lonely Crimson Endless Velvet Neon Hollow Frozen Burning "
        "Sweet Silent Restless Fading Secret Shining Distant Paper Ocean Summer Winter Little Blue Dark Happy "
        "Sad Falling Runaway Sacred Lost Last First Perfect Bitter Crazy Gentle Northern Savage Cosmic").split()
NOUNS = ("Love River Heart Fire Rain Dreams Story Lights Road Sky Moon Stars Night Ocean Garden City Highway "
         "Shadows Thunder Echo Paradise Horizon Diamonds Roses Letters Waves Angel Mirror Kingdom Desert Island "
         "Memories Heaven Storm Silence Flame Ghost Wings Daydream Melody Streets Satellite Harbor Lullaby "
         "Tears Sunrise Sunset Promise Window Parade Feather Canyon Carousel Compass Lantern Fever").split()
GERUNDS = "Chasing Dancing Running Holding Waiting Calling Burning Dreaming Fading Finding Leaving Drifting".split()
STOPWORDS = frozenset("a an and are as at be but by for if in into is it no not of on or such that the their "
                      "then there these they this to was will with".split())
