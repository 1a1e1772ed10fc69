"""The generated world's vocabulary: genres and their families, typical audio features per
genre, and the words that generated artist, track, user and street names are made of.

Kept apart from the simulation so that changing a name table cannot touch the taste model; the
draws still come from the caller's random stream, so the files stay byte-identical per seed.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


# --------------------------------------------------------------------------------------------
# The world's vocabulary
# --------------------------------------------------------------------------------------------

# Families group related genres: genres of one family get nearby taste vectors, so a rock fan
# tends to like indie rock too. The first genre of a family is its most common umbrella genre.
GENRE_FAMILIES: dict[str, tuple[str, ...]] = {
    "pop": ("pop", "dance pop", "indie pop", "synthpop", "k-pop", "polish pop", "disco polo"),
    "rock": ("rock", "classic rock", "alternative rock", "indie rock", "punk", "grunge",
             "polish rock"),
    "metal": ("metal", "heavy metal", "thrash metal", "death metal", "metalcore"),
    "hip hop": ("hip hop", "rap", "trap", "drill", "polish hip hop"),
    "soul": ("r&b", "soul", "funk", "neo soul", "disco"),
    "electronic": ("electronic", "house", "deep house", "techno", "trance", "drum and bass",
                   "dubstep", "ambient"),
    "latin": ("reggaeton", "latin pop", "salsa", "bachata", "reggae", "afrobeats"),
    "jazz": ("jazz", "smooth jazz", "bebop", "blues", "swing"),
    "classical": ("classical", "baroque", "opera", "soundtrack"),
    "folk": ("folk", "indie folk", "country", "singer-songwriter", "americana"),
}
GENRES: tuple[str, ...] = tuple(g for family in GENRE_FAMILIES.values() for g in family)

# How common each family is among artists and listeners.
FAMILY_SHARE = {"pop": 0.20, "rock": 0.14, "metal": 0.06, "hip hop": 0.16, "soul": 0.07,
                "electronic": 0.12, "latin": 0.06, "jazz": 0.05, "classical": 0.05,
                "folk": 0.09}
# Families whose fans overlap; their taste directions are pulled towards each other.
NEIGHBOURS = [("rock", "metal"), ("pop", "soul"), ("pop", "latin"), ("hip hop", "soul"),
              ("pop", "electronic"), ("jazz", "soul"), ("jazz", "classical"), ("folk", "rock"),
              ("hip hop", "latin")]


class _Profile(NamedTuple):
    """Typical audio features and era of a genre (means; tracks scatter around them)."""

    dance: float
    energy: float
    speech: float
    acoustic: float
    instrumental: float  # share of instrumental tracks
    valence: float
    tempo: float
    duration_s: float
    explicit: float      # share of explicit tracks
    year: float          # typical debut year of an artist
    year_sd: float


FAMILY_PROFILE = {
    #                     dance energy speech acoustic instr valence tempo  dur  expl  year  sd
    "pop":        _Profile(0.66, 0.66, 0.07, 0.20, 0.02, 0.56, 118, 205, 0.15, 2008, 10),
    "rock":       _Profile(0.50, 0.76, 0.05, 0.10, 0.05, 0.50, 126, 235, 0.10, 1992, 15),
    "metal":      _Profile(0.40, 0.92, 0.08, 0.01, 0.10, 0.30, 135, 270, 0.25, 1996, 11),
    "hip hop":    _Profile(0.75, 0.65, 0.26, 0.15, 0.02, 0.50, 100, 200, 0.60, 2011, 8),
    "soul":       _Profile(0.68, 0.56, 0.08, 0.30, 0.03, 0.62, 106, 225, 0.15, 1992, 16),
    "electronic": _Profile(0.68, 0.80, 0.06, 0.05, 0.60, 0.40, 126, 330, 0.05, 2008, 9),
    "latin":      _Profile(0.76, 0.72, 0.09, 0.20, 0.01, 0.70, 98, 210, 0.25, 2012, 9),
    "jazz":       _Profile(0.55, 0.40, 0.05, 0.70, 0.35, 0.55, 115, 280, 0.00, 1975, 20),
    "classical":  _Profile(0.30, 0.15, 0.04, 0.95, 0.85, 0.25, 100, 380, 0.00, 1990, 25),
    "folk":       _Profile(0.55, 0.45, 0.04, 0.70, 0.05, 0.50, 115, 215, 0.05, 1995, 18),
}
GENRE_OVERRIDES: dict[str, dict[str, float]] = {
    "techno": dict(tempo=132, energy=0.88, instrumental=0.8),
    "house": dict(tempo=124), "deep house": dict(tempo=122, energy=0.65),
    "trance": dict(tempo=138), "drum and bass": dict(tempo=174, energy=0.9),
    "dubstep": dict(tempo=140),
    "ambient": dict(energy=0.2, dance=0.3, instrumental=0.9, acoustic=0.5, tempo=90),
    "trap": dict(speech=0.22, tempo=140),
    "drill": dict(tempo=142, year=2019, year_sd=3, explicit=0.8),
    "polish hip hop": dict(year=2014, year_sd=7),
    "k-pop": dict(energy=0.78, dance=0.70, year=2016, year_sd=5),
    "disco polo": dict(dance=0.80, energy=0.78, valence=0.85, year=2005, year_sd=10, explicit=0),
    "punk": dict(tempo=165, duration_s=150, energy=0.9, year=1985, year_sd=12),
    "grunge": dict(year=1993, year_sd=4), "classic rock": dict(year=1974, year_sd=7),
    "death metal": dict(energy=0.97, valence=0.12, tempo=165),
    "bebop": dict(tempo=200, year=1955, year_sd=8), "swing": dict(year=1945, year_sd=10),
    "blues": dict(year=1965, year_sd=15), "smooth jazz": dict(year=1990, year_sd=10),
    "opera": dict(instrumental=0.1), "baroque": dict(tempo=110),
    "soundtrack": dict(year=2005, year_sd=12, instrumental=0.6),
    "singer-songwriter": dict(acoustic=0.8, energy=0.35),
    "disco": dict(year=1978, year_sd=5, dance=0.8, valence=0.8),
    "reggaeton": dict(tempo=94), "afrobeats": dict(year=2016, year_sd=5),
}

_ADJ = ("Velvet", "Silent", "Electric", "Golden", "Paper", "Neon", "Crimson", "Hollow", "Wild",
        "Midnight", "Broken", "Crystal", "Lonely", "Northern", "Burning", "Frozen", "Quiet",
        "Sleepy", "Distant", "Violet", "Savage", "Lucky", "Restless", "Secret", "Cosmic",
        "Amber", "Rusty", "Pale", "Blue", "Iron", "Sugar", "Glass", "Wooden", "Silver",
        "Tender", "Heavy", "Lazy", "Loud", "Hidden", "Bitter")
_NOUN = ("Harbour", "Lantern", "Echo", "Garden", "River", "Machine", "Horizon", "Mirror",
         "Comet", "Forest", "Signal", "Shadow", "Ocean", "Engine", "Tiger", "Orchard",
         "Satellite", "Feather", "Thunder", "Canyon", "Meadow", "Pilot", "Parade", "Circle",
         "Highway", "Window", "Compass", "Winter", "Summer", "Island", "Prophet", "Ghost",
         "Wolf", "Raven", "Anchor", "Citadel", "Arcade", "Valley", "Voyage", "Candle")
_VERB = ("Dancing", "Running", "Falling", "Waiting", "Dreaming", "Burning", "Chasing",
         "Holding", "Breaking", "Drifting", "Calling", "Singing")
_PREP = ("in the", "through the", "under the", "with the", "for the", "into the", "across the")
_FIRST = ("Ava", "Leo", "Maya", "Jonah", "Ivy", "Milo", "Nora", "Felix", "Luna", "Oscar", "Cleo",
          "Theo", "Iris", "Jasper", "Hazel", "Ezra", "Stella", "Rafael", "Lena", "Caspian",
          "Sienna", "Arlo", "Greta", "Marlon")
_LAST = ("Hart", "Vale", "Monroe", "Sterling", "Quinn", "Marlowe", "Castell", "Rowe", "Ashby",
         "Lind", "Navarro", "Okafor", "Kwan", "Moreau", "Berg", "Holt", "Calder", "Winslow",
         "Fairbanks", "Lockwood", "Dunmore", "Ellery")
_FIRST_ES = ("Mateo", "Lucía", "Valentina", "Diego", "Camila", "Santiago", "Isabela", "Thiago")
_LAST_ES = ("Vargas", "Montoya", "Cienfuegos", "Herrera", "Solano", "Duarte", "Paredes", "Ibarra")
FIRST_PL = ("Anna", "Piotr", "Katarzyna", "Tomasz", "Magdalena", "Paweł", "Agnieszka",
            "Michał", "Joanna", "Krzysztof", "Aleksandra", "Jakub", "Zofia", "Marcin",
            "Natalia", "Łukasz", "Karolina", "Mateusz", "Julia", "Wojciech", "Ewa", "Bartosz")
LAST_PL = ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński",
           "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur", "Krawczyk",
           "Piotrowski", "Grabowski", "Pawlak", "Michalski", "Król", "Wieczorek", "Sadowski")
_WORD_PL = ("Noc", "Miłość", "Lato", "Wiatr", "Serce", "Miasto", "Deszcz", "Droga", "Niebo",
            "Sen", "Morze", "Ogień", "Jesień", "Gwiazda")
_TITLES_PL = ("Ostatni Taniec", "Cała Noc", "Zanim Zasnę", "Do Rana", "Na Zawsze", "Bez Ciebie",
              "Tylko My", "Jeszcze Raz", "Pod Niebem", "Wracam do Domu")
STREETS = ("Długa", "Krótka", "Lipowa", "Polna", "Leśna", "Słoneczna", "Ogrodowa", "Kwiatowa",
           "Szkolna", "Brzozowa", "Mickiewicza", "Kościuszki", "Sienkiewicza", "Piłsudskiego",
           "Kolejowa", "Parkowa", "Łąkowa", "Zielona", "Wiejska", "Klonowa")
CITIES = ("Warszawa", "Kraków", "Wrocław", "Poznań", "Gdańsk", "Łódź", "Szczecin", "Lublin",
          "Radom", "Gdynia")
CITY_SHARE = (0.24, 0.14, 0.12, 0.10, 0.09, 0.09, 0.07, 0.06, 0.05, 0.04)
_FORMS = ("Sonata", "Concerto", "Symphony", "Nocturne", "Étude", "Prelude", "Suite",
          "String Quartet")
_MOVEMENTS = ("I. Allegro", "II. Adagio", "II. Andante", "III. Scherzo", "III. Menuetto",
              "IV. Presto", "I. Largo", "IV. Rondo")
_KEYS = ("C", "D", "E", "F", "G", "A", "B", "E-flat", "B-flat", "F-sharp")

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EVENT_TYPES = ("play", "like", "skip", "advertisement")  # codes 0..3 in the simulation
PLAY, LIKE, SKIP, ADVERT = range(4)


class Words:
    """Deterministic word picks for generated names, drawn from the stage's random stream.

    Integers are drawn in blocks (far faster than one numpy call per word) and consumed in order.
    """

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._codes: list[int] = []
        self._i = 0

    def __call__(self, options: Sequence):
        if self._i == len(self._codes):
            self._codes = self._rng.integers(0, 1 << 30, size=4096).tolist()
            self._i = 0
        self._i += 1
        return options[self._codes[self._i - 1] % len(options)]

    def chance(self, p: float) -> bool:
        return self(range(1000)) < p * 1000


def artist_name(w: Words, genre: str) -> str:
    if genre.startswith("polish") or genre == "disco polo":
        return w((f"{w(FIRST_PL)} {w(LAST_PL)}",
                  f"{w(_WORD_PL)} {w(('Band', 'Project', 'Trio', 'Kolektyw'))}"))
    if genre == "k-pop":
        return f"{w(_NOUN).upper()}{w(range(1, 10))}" if w.chance(0.5) else \
            f"{w(_ADJ).upper()} {w(_NOUN).upper()}"
    if genre in GENRE_FAMILIES["latin"]:
        return f"{w(_FIRST_ES)} {w(_LAST_ES)}"
    if genre in GENRE_FAMILIES["hip hop"]:
        return w((f"Lil {w(_NOUN)}", f"MC {w(_ADJ)}", f"Young {w(_FIRST)}",
                  f"{w(_ADJ)} {w(_FIRST)}", f"{w(_FIRST)} {w(_LAST)}"))
    if genre in GENRE_FAMILIES["electronic"]:
        return w((f"DJ {w(_NOUN)}", f"{w(_NOUN)}{w(('', 'tronic', 'wave', ' 808'))}",
                  f"{w(_ADJ)} {w(_NOUN)}", f"{w(_FIRST)} {w(_LAST)}"))
    if genre in GENRE_FAMILIES["classical"]:
        return w((f"{w(_FIRST)} {w(_LAST)}", f"{w(CITIES)} Philharmonic",
                  f"{w(_LAST)} String Quartet", f"{w(_FIRST)} {w(_LAST)} Ensemble"))
    if genre in GENRE_FAMILIES["jazz"]:
        return w((f"{w(_FIRST)} {w(_LAST)} Trio", f"{w(_FIRST)} {w(_LAST)}",
                  f"{w(_LAST)} {w(_ADJ)} Quintet"))
    return w((f"The {w(_ADJ)} {w(_NOUN)}s", f"{w(_ADJ)} {w(_NOUN)}", f"{w(_FIRST)} {w(_LAST)}",
              f"{w(_FIRST)} & the {w(_NOUN)}s", f"{w(_NOUN)} {w(_NOUN)}"))


def track_name(w: Words, genre: str, live: bool, hip_hop: bool) -> str:
    if genre in GENRE_FAMILIES["classical"] and genre != "soundtrack":
        return (f"{w(_FORMS)} No. {w(range(1, 25))} in {w(_KEYS)} {w(('major', 'minor'))}, "
                f"Op. {w(range(1, 120))}: {w(_MOVEMENTS)}")
    if genre.startswith("polish") or genre == "disco polo":
        name = w((w(_WORD_PL), f"{w(_WORD_PL)} i {w(_WORD_PL)}", w(_TITLES_PL)))
    else:
        name = w((f"{w(_ADJ)} {w(_NOUN)}", w(_NOUN), f"{w(_VERB)} {w(_PREP)} {w(_NOUN)}",
                  f"{w(_NOUN)} of the {w(_NOUN)}", f"{w(_ADJ)} {w(_NOUN)}s"))
    if hip_hop and w.chance(0.3):
        name += f" (feat. {w(_ADJ)} {w(_FIRST)})"
    if live:
        name += " - Live"
    return name
