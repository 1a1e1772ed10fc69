"""Synthetic Pozytywka exports with a known ground truth.

The real export cannot be shipped, so the demo and the tests run on a generated one: the same five
JSONL files, the same faults, and a hidden taste model (``ground_truth.npz``) against which a
recommender's playlists can be scored by how much each group member *truly* likes them.

Everything comes from one seed through independent random streams per stage, so the same
arguments give byte-identical files and switching faults off leaves the valid rows unchanged.
Listening is simulated for all sessions at once with numpy; only the catalogue and the users
(tens of thousands of rows at most) are built row by row.

Faults never cost valid catalogue data: bad artist, track and storage rows are extra rows (bad
artists have no tracks), so the ground truth covers exactly the rows an importer should keep.
In sessions.jsonl faults spoil existing plays, likes or skips in place (one fault per row) and
duplicates are extra copies, as in the real export.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

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
_FAMILY_SHARE = {"pop": 0.20, "rock": 0.14, "metal": 0.06, "hip hop": 0.16, "soul": 0.07,
                 "electronic": 0.12, "latin": 0.06, "jazz": 0.05, "classical": 0.05,
                 "folk": 0.09}
# Families whose fans overlap; their taste directions are pulled towards each other.
_NEIGHBOURS = [("rock", "metal"), ("pop", "soul"), ("pop", "latin"), ("hip hop", "soul"),
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


_FAMILY_PROFILE = {
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
_GENRE_OVERRIDES: dict[str, dict[str, float]] = {
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
_FIRST_PL = ("Anna", "Piotr", "Katarzyna", "Tomasz", "Magdalena", "Paweł", "Agnieszka",
             "Michał", "Joanna", "Krzysztof", "Aleksandra", "Jakub", "Zofia", "Marcin",
             "Natalia", "Łukasz", "Karolina", "Mateusz", "Julia", "Wojciech", "Ewa", "Bartosz")
_LAST_PL = ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński",
            "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur", "Krawczyk",
            "Piotrowski", "Grabowski", "Pawlak", "Michalski", "Król", "Wieczorek", "Sadowski")
_WORD_PL = ("Noc", "Miłość", "Lato", "Wiatr", "Serce", "Miasto", "Deszcz", "Droga", "Niebo",
            "Sen", "Morze", "Ogień", "Jesień", "Gwiazda")
_TITLES_PL = ("Ostatni Taniec", "Cała Noc", "Zanim Zasnę", "Do Rana", "Na Zawsze", "Bez Ciebie",
              "Tylko My", "Jeszcze Raz", "Pod Niebem", "Wracam do Domu")
_STREETS = ("Długa", "Krótka", "Lipowa", "Polna", "Leśna", "Słoneczna", "Ogrodowa", "Kwiatowa",
            "Szkolna", "Brzozowa", "Mickiewicza", "Kościuszki", "Sienkiewicza", "Piłsudskiego",
            "Kolejowa", "Parkowa", "Łąkowa", "Zielona", "Wiejska", "Klonowa")
_CITIES = ("Warszawa", "Kraków", "Wrocław", "Poznań", "Gdańsk", "Łódź", "Szczecin", "Lublin",
           "Radom", "Gdynia")
_CITY_SHARE = (0.24, 0.14, 0.12, 0.10, 0.09, 0.09, 0.07, 0.06, 0.05, 0.04)
_FORMS = ("Sonata", "Concerto", "Symphony", "Nocturne", "Étude", "Prelude", "Suite",
          "String Quartet")
_MOVEMENTS = ("I. Allegro", "II. Adagio", "II. Andante", "III. Scherzo", "III. Menuetto",
              "IV. Presto", "I. Largo", "IV. Rondo")
_KEYS = ("C", "D", "E", "F", "G", "A", "B", "E-flat", "B-flat", "F-sharp")

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_EVENT_TYPES = ("play", "like", "skip", "advertisement")  # codes 0..3 in the simulation
PLAY, LIKE, SKIP, ADVERT = range(4)

# --------------------------------------------------------------------------------------------
# Knobs of the hidden model and of listening behaviour
# --------------------------------------------------------------------------------------------
LATENT_DIM = 16
PERIOD_START = np.datetime64("2023-01-01T00:00:00", "us")
PERIOD_DAYS = 181                       # 2023-01-01 .. 2023-06-30
LAST_RELEASE_YEAR = 2023
SESSIONS_PER_USER = 90
SCALE, OFFSET = 5.0, -1.6               # affinity = sigmoid(SCALE <u, v> + bias + OFFSET)
TASTE_SHARPNESS = 9.0                   # how strongly taste steers what gets played
EXPLORE = 0.10                          # share of plays drawn by popularity alone
TRACKS_PER_SESSION = 10.5
ADVERT_RATE = 0.12                      # per heard track, non-premium users only
SILENT_USERS = 0.03                     # users who never listened: cold start is real
RERELEASED = 0.03
LEGACY_SESSIONS = 0.06                  # sessions whose timestamps have no fraction
FAULT_RATE = {"artists": 0.002, "tracks": 0.002, "track_storage": 0.002,
              "events": 0.0004, "duplicate_runs": 0.0003}
# Friends (``taste_overlap`` t in [0, 1]; 0 is the default world): every taste moves a share
# OVERLAP_PULL * t of the way towards the chart taste, popularity weighs (1 + t) times as much
# in the true affinity and in what gets played.
OVERLAP_PULL = 0.4
_USER_CHUNK = 128                       # users per block of the sampling matrices
_WRITE_CHUNK = 100_000                  # events per formatted block


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------
@dataclass
class GroundTruth:
    """The hidden taste model, kept so that playlists can be scored by what people truly like.

    Affinity is the probability that a user enjoys a track, under the taste the user has at the
    end of the export period (the taste that recommendations made "now" should serve).
    """

    user_ids: np.ndarray       # int64 (n_users,)
    track_ids: np.ndarray      # <U22 (n_tracks,), the valid tracks in tracks.jsonl order
    user_taste: np.ndarray     # float32 (n_users, k)
    track_vectors: np.ndarray  # float32 (n_tracks, k)
    track_bias: np.ndarray     # float32 (n_tracks,)
    scale: float
    offset: float

    FILENAME = "ground_truth.npz"

    def __post_init__(self) -> None:
        self._user_row = {int(u): i for i, u in enumerate(self.user_ids.tolist())}
        self._track_row = {t: i for i, t in enumerate(self.track_ids.tolist())}

    @classmethod
    def load(cls, path: str | Path) -> "GroundTruth":
        """Load ``ground_truth.npz`` (or the export folder that holds it), without pickle."""
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILENAME
        with np.load(path, allow_pickle=False) as npz:
            return cls(user_ids=npz["user_ids"], track_ids=npz["track_ids"],
                       user_taste=npz["user_taste"], track_vectors=npz["track_vectors"],
                       track_bias=npz["track_bias"], scale=float(npz["scale"]),
                       offset=float(npz["offset"]))

    def save(self, path: Path) -> None:
        _write_npz(path, {
            "user_ids": self.user_ids.astype(np.int64),
            "track_ids": self.track_ids.astype("<U22"),
            "user_taste": self.user_taste.astype(np.float32),
            "track_vectors": self.track_vectors.astype(np.float32),
            "track_bias": self.track_bias.astype(np.float32),
            "scale": np.float32(self.scale),
            "offset": np.float32(self.offset),
        })

    def affinity(self, user_ids: Sequence[int], track_ids: Sequence[str]) -> np.ndarray:
        """Probability that each user enjoys each track: float32 (len(user_ids), len(track_ids)).

        Raises KeyError for an id the generator never made (e.g. a fault row's id).
        """
        urows = [self._user_row[int(u)] for u in user_ids]
        trows = [self._track_row[str(t)] for t in track_ids]
        logits = (self.scale * (self.user_taste[urows] @ self.track_vectors[trows].T)
                  + self.track_bias[trows][None, :] + self.offset)
        return _sigmoid(logits).astype(np.float32)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with fixed zip timestamps so that the file is byte-reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                        buf.getvalue())


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _spotify_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """22-char base62 ids; the first character stays below '8' as in real 128-bit Spotify ids."""
    codes = rng.integers(0, 62, size=(n, 22))
    codes[:, 0] = rng.integers(0, 8, size=n)
    alphabet = np.array([ord(c) for c in _BASE62], dtype=np.uint32)
    return np.ascontiguousarray(alphabet[codes]).view("<U22").ravel()


def _beta(rng: np.random.Generator, mean: np.ndarray, concentration: float) -> np.ndarray:
    mean = np.clip(mean, 0.02, 0.98)
    return rng.beta(mean * concentration, (1 - mean) * concentration)


def _fault_count(enabled: bool, rate: float, rows: int) -> int:
    """A sprinkling proportional to the file, but at least one of each kind in a small world."""
    return max(1, round(rate * rows)) if enabled else 0


class _FreshIds:
    """Ids for rows that point nowhere, never colliding with the catalogue's."""

    def __init__(self, rng: np.random.Generator, taken: set[str]):
        self._rng, self._taken, self._pool = rng, taken, []

    def pop(self) -> str:
        while not self._pool:
            self._pool = [i for i in _spotify_ids(self._rng, 1024).tolist()[::-1]
                          if i not in self._taken]
        new = self._pool.pop()
        self._taken.add(new)
        return new


class _Words:
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


# --------------------------------------------------------------------------------------------
# The catalogue: genres, artists, tracks
# --------------------------------------------------------------------------------------------
@dataclass
class _Catalogue:
    genre_family: np.ndarray    # (G,) family index of each genre
    genre_vectors: np.ndarray   # (G, k)
    artist_ids: np.ndarray      # <U22 (A,)
    artist_names: list[str]
    artist_genres: list[list[int]]
    track_ids: np.ndarray       # <U22 (T,), file order
    track_names: list[str]
    track_artist: np.ndarray    # (T,) artist index
    features: dict[str, np.ndarray]
    popularity: np.ndarray      # int (T,)
    release_date: list[str]
    track_vectors: np.ndarray   # float32 (T, k)
    track_bias: np.ndarray      # float32 (T,)
    rereleased: int


def _genre_space(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Taste directions: families (pulled towards their neighbours), genres near their family."""
    families = list(GENRE_FAMILIES)
    base = _unit(rng.standard_normal((len(families), LATENT_DIM)))
    fam = base.copy()
    for a, b in _NEIGHBOURS:
        ia, ib = families.index(a), families.index(b)
        fam[ia] += 0.35 * base[ib]
        fam[ib] += 0.35 * base[ia]
    # Centred, so that unrelated families are apart instead of sharing a common "likes music"
    # direction that would make every track half-liked by everyone.
    share = np.array([_FAMILY_SHARE[f] for f in families])
    fam = _unit(fam - share @ fam / share.sum())
    genre_family = np.array([families.index(f) for f, gs in GENRE_FAMILIES.items() for _ in gs])
    genres = _unit(fam[genre_family] + 0.45 * _unit(rng.standard_normal((len(GENRES),
                                                                          LATENT_DIM))))
    return genre_family, genres


def _genre_weights() -> np.ndarray:
    """Popularity of each genre: family share, with the umbrella genre twice as common."""
    w = []
    for family, genres in GENRE_FAMILIES.items():
        inner = np.array([2.0] + [1.0] * (len(genres) - 1))
        w.extend(_FAMILY_SHARE[family] * inner / inner.sum())
    return np.array(w)


def _genre_profiles() -> np.ndarray:
    """(G, len(_Profile)) table of per-genre feature means."""
    rows = []
    for family, genres in GENRE_FAMILIES.items():
        for g in genres:
            rows.append(_FAMILY_PROFILE[family]._replace(**_GENRE_OVERRIDES.get(g, {})))
    return np.array(rows, dtype=np.float64)


def _artist_name(w: _Words, genre: str) -> str:
    if genre.startswith("polish") or genre == "disco polo":
        return w((f"{w(_FIRST_PL)} {w(_LAST_PL)}",
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
        return w((f"{w(_FIRST)} {w(_LAST)}", f"{w(_CITIES)} Philharmonic",
                  f"{w(_LAST)} String Quartet", f"{w(_FIRST)} {w(_LAST)} Ensemble"))
    if genre in GENRE_FAMILIES["jazz"]:
        return w((f"{w(_FIRST)} {w(_LAST)} Trio", f"{w(_FIRST)} {w(_LAST)}",
                  f"{w(_LAST)} {w(_ADJ)} Quintet"))
    return w((f"The {w(_ADJ)} {w(_NOUN)}s", f"{w(_ADJ)} {w(_NOUN)}", f"{w(_FIRST)} {w(_LAST)}",
              f"{w(_FIRST)} & the {w(_NOUN)}s", f"{w(_NOUN)} {w(_NOUN)}"))


def _track_name(w: _Words, genre: str, live: bool, hip_hop: bool) -> str:
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


def _release_dates(rng: np.random.Generator, year: np.ndarray, full: np.ndarray) -> list[str]:
    """Mixed precision like Spotify's: older releases more often carry only a year."""
    month = rng.integers(1, 13, size=len(year))
    day = rng.integers(1, 29, size=len(year))
    last = year >= LAST_RELEASE_YEAR
    month[last] = np.minimum(month[last], 6)        # nothing after the export period
    u = rng.random(len(year))
    year_only = ~full & (u < np.where(year < 1990, 0.30, 0.06))
    month_only = ~full & ~year_only & (u < np.where(year < 1990, 0.36, 0.10))
    out = []
    for y, m, d, yo, mo in zip(year.tolist(), month.tolist(), day.tolist(), year_only.tolist(),
                               month_only.tolist()):
        out.append(f"{y:04d}" if yo else f"{y:04d}-{m:02d}" if mo else f"{y:04d}-{m:02d}-{d:02d}")
    return out


def _make_catalogue(rng: np.random.Generator, n_tracks: int) -> _Catalogue:
    genre_family, genre_vecs = _genre_space(rng)
    genre_w = _genre_weights()
    profiles = _genre_profiles()
    n_genres = len(GENRES)

    # Artists: a primary genre drives their sound and era; extra genres mostly from its family.
    n_artists = max(5, n_tracks // 8)
    primary = rng.choice(n_genres, size=n_artists, p=genre_w)
    n_extra = rng.choice(3, size=n_artists, p=[0.45, 0.35, 0.20])
    families = list(GENRE_FAMILIES)
    related = {f: [f] + [b if a == f else a for a, b in _NEIGHBOURS if f in (a, b)]
               for f in families}
    pick = _Words(rng)
    artist_genres: list[list[int]] = []
    for a in range(n_artists):
        gs = [int(primary[a])]
        own = families[genre_family[gs[0]]]
        for _ in range(int(n_extra[a])):
            family = pick(related[own]) if pick.chance(0.2) else own
            g = GENRES.index(pick(GENRE_FAMILIES[family]))
            if g not in gs:
                gs.append(g)
        artist_genres.append(gs)
    artist_vecs = _unit(np.array([genre_vecs[gs].mean(axis=0) for gs in artist_genres])
                        + 0.35 * _unit(rng.standard_normal((n_artists, LATENT_DIM))))
    artist_fame = rng.standard_normal(n_artists)
    prof_a = profiles[primary]
    debut = rng.normal(prof_a[:, 9], prof_a[:, 10])
    recent = debut > LAST_RELEASE_YEAR - 1        # newcomers: spread over the last few years
    debut[recent] = LAST_RELEASE_YEAR - 1 - rng.exponential(3.0, recent.sum())
    debut = np.clip(np.round(debut), 1940, LAST_RELEASE_YEAR)
    words = _Words(rng)
    artist_names = [_artist_name(words, GENRES[primary[a]]) for a in range(n_artists)]

    # Original songs; prolific artists hold many of them.
    n_re = round(RERELEASED * n_tracks) if n_tracks >= 30 else 1
    n_orig = n_tracks - n_re
    output = rng.lognormal(0.0, 1.1, size=n_artists)
    artist = rng.choice(n_artists, size=n_orig, p=output / output.sum())
    prof = profiles[primary[artist]]
    f: dict[str, np.ndarray] = {}
    f["danceability"] = _beta(rng, prof[:, 0], 12)
    f["energy"] = _beta(rng, prof[:, 1], 10)
    f["speechiness"] = _beta(rng, prof[:, 2], 15)
    f["acousticness"] = _beta(rng, prof[:, 3], 3)
    instrumental = rng.random(n_orig) < prof[:, 4]
    f["instrumentalness"] = np.where(instrumental, rng.beta(9, 2, n_orig),
                                     rng.beta(0.4, 25, n_orig))
    live = rng.random(n_orig) < 0.06
    f["liveness"] = np.where(live, rng.beta(6, 3, n_orig), rng.beta(2, 12, n_orig))
    f["valence"] = _beta(rng, prof[:, 5], 5)
    f["key"] = rng.integers(0, 12, size=n_orig)
    f["loudness"] = np.clip(-22 + 17 * f["energy"] + rng.normal(0, 2, n_orig), -40, -1)
    f["tempo"] = np.clip(rng.normal(prof[:, 6], 0.1 * prof[:, 6]), 50, 215)
    duration_ms = np.clip(rng.lognormal(np.log(prof[:, 7] * 1000), 0.25), 30_000, 1_200_000)
    f["duration_ms"] = duration_ms.astype(np.int64)
    f["explicit"] = (rng.random(n_orig) < prof[:, 8]).astype(np.int64)
    # Releases follow the debut by a few years; a career that would run past the export is
    # squeezed into the years it has had so far (instead of piling up in the last year).
    start = debut[artist]
    year = start + np.round(rng.gamma(1.5, 4.0, n_orig))
    late = year > LAST_RELEASE_YEAR
    year[late] = start[late] + np.floor(rng.random(late.sum()) * (LAST_RELEASE_YEAR + 1
                                                                   - start[late]))
    year = year.astype(np.int64)
    age = LAST_RELEASE_YEAR - year
    popularity = np.round(100 * _sigmoid(-1.4 + 0.9 * artist_fame[artist] - 0.012 * age
                                         + 0.7 * rng.standard_normal(n_orig))).astype(np.int64)

    # What a track sounds like moves its taste vector a little away from its artist's.
    audio = np.column_stack([f["danceability"], f["energy"], f["speechiness"],
                             f["acousticness"], f["instrumentalness"], f["valence"],
                             f["tempo"] / 100])
    audio = (audio - audio.mean(axis=0)) / (audio.std(axis=0) + 1e-9)
    mix = rng.standard_normal((audio.shape[1], LATENT_DIM)) / np.sqrt(audio.shape[1])
    vectors = _unit(artist_vecs[artist] + 0.3 * _unit(audio @ mix + 1e-9)
                    + 0.25 * _unit(rng.standard_normal((n_orig, LATENT_DIM))))

    is_hip_hop = genre_family[primary[artist]] == list(GENRE_FAMILIES).index("hip hop")
    # Two different songs of one artist never share a name: name and artist identify a song.
    names: list[str] = []
    taken: set[tuple[str, int]] = set()
    for i, a in enumerate(artist.tolist()):
        name = _track_name(words, GENRES[primary[a]], bool(live[i]), bool(is_hip_hop[i]))
        attempt = 1
        while (name, a) in taken:
            attempt += 1
            name = _track_name(words, GENRES[primary[a]], bool(live[i]), bool(is_hip_hop[i]))
            if attempt > 10:                    # a very prolific artist ran out of words
                name = f"{name} - Part {attempt}"
        taken.add((name, a))
        names.append(name)

    # Re-releases: the same song (name, artist, sound, taste) under a new id, later date and
    # different popularity.
    src = rng.choice(n_orig, size=n_re, replace=n_re > n_orig)
    for key in f:
        f[key] = np.concatenate([f[key], f[key][src]])
    f["loudness"][n_orig:] = np.clip(f["loudness"][n_orig:] + rng.normal(1, 0.5, n_re), -40, -1)
    f["duration_ms"][n_orig:] += rng.integers(-3000, 3000, n_re)
    re_pop = np.clip(popularity[src] + np.round(rng.normal(0, 12, n_re)), 0, 100).astype(np.int64)
    re_pop = np.where(re_pop == popularity[src], (re_pop + 1) % 101, re_pop)
    popularity = np.concatenate([popularity, re_pop])
    re_year = year[src] + np.floor(rng.random(n_re) * (LAST_RELEASE_YEAR + 1 - year[src]))
    re_year = re_year.astype(np.int64)
    dates = _release_dates(rng, np.concatenate([year, re_year]),
                           full=np.arange(n_tracks) >= n_orig)
    for i in range(n_re):                      # a re-release never shares the original's date
        if dates[n_orig + i] == dates[src[i]]:
            dates[n_orig + i] = f"{re_year[i]:04d}-06-30"
    artist = np.concatenate([artist, artist[src]])
    names += [names[s] for s in src.tolist()]
    vectors = np.concatenate([vectors, vectors[src]])

    # File order is arbitrary, as in the real export: re-releases are not next to originals.
    order = rng.permutation(n_tracks)
    f = {key: v[order] for key, v in f.items()}
    track_ids = _spotify_ids(rng, n_tracks)
    popularity = popularity[order]
    return _Catalogue(
        genre_family=genre_family, genre_vectors=genre_vecs,
        artist_ids=_spotify_ids(rng, n_artists), artist_names=artist_names,
        artist_genres=artist_genres, track_ids=track_ids,
        track_names=[names[i] for i in order.tolist()], track_artist=artist[order],
        features=f, popularity=popularity, release_date=[dates[i] for i in order.tolist()],
        track_vectors=vectors[order].astype(np.float32),
        track_bias=(1.6 * popularity / 100 - 0.4).astype(np.float32), rereleased=n_re)


# --------------------------------------------------------------------------------------------
# Users and their hidden taste
# --------------------------------------------------------------------------------------------
@dataclass
class _Users:
    ids: np.ndarray             # int64, from 101
    names: list[str]
    cities: list[str]
    streets: list[str]
    premium: np.ndarray         # bool
    favourite_genres: list[list[str] | None]
    taste_start: np.ndarray     # float32 (n, k)
    taste_end: np.ndarray       # float32 (n, k)
    mainstream: np.ndarray      # how much popularity sways what they play
    activity: np.ndarray        # relative number of sessions; 0 for users who never listened


def _draw_tastes(rng: np.random.Generator, n: int, cat: _Catalogue,
                 overlap: float = 0.0) -> np.ndarray:
    """Each listener loves one to three genres (usually of different families) plus noise;
    with ``overlap`` the taste is then pulled towards the chart taste (no extra random draws,
    so that the same seed gives the same people, only more alike)."""
    genre_w = _genre_weights()
    picks = rng.choice(len(GENRES), size=(n, 3), p=genre_w)
    weights = rng.dirichlet([2.0, 2.0, 2.0], size=n)
    n_loved = rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2])
    weights[np.arange(3)[None, :] >= n_loved[:, None]] = 0
    taste = np.einsum("nj,njk->nk", weights, cat.genre_vectors[picks])
    taste = _unit(_unit(taste) + 0.35 * _unit(rng.standard_normal((n, LATENT_DIM))))
    if not overlap:
        return taste
    pull = OVERLAP_PULL * overlap
    return _unit((1 - pull) * taste + pull * chart_taste(cat.track_vectors, cat.popularity))


def chart_taste(track_vectors: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """The taste of the charts: the popularity-weighted mean direction of the tracks, i.e. the
    genres that popular tracks share. Friends' tastes lean towards it."""
    w = np.asarray(popularity, np.float64) ** 2
    return _unit(w @ np.asarray(track_vectors, np.float64))


def _make_users(rng: np.random.Generator, n: int, cat: _Catalogue,
                overlap: float = 0.0) -> _Users:
    start = _draw_tastes(rng, n, cat, overlap)
    # Drift: over the months each listener moves part of the way towards a new taste.
    drift = rng.beta(2.0, 4.0, size=n)[:, None]
    end = _unit((1 - drift) * start + drift * _draw_tastes(rng, n, cat, overlap))

    # Declared genres come from the sign-up taste, with noise and the odd random pick.
    noisy = start @ cat.genre_vectors.T * 6 + rng.gumbel(size=(n, len(GENRES)))
    ranked = np.argsort(-noisy, axis=1)[:, :3]
    random_pick = rng.integers(0, len(GENRES), size=(n, 3))
    ranked = np.where(rng.random((n, 3)) < 0.15, random_pick, ranked)
    n_declared = rng.choice(4, size=n, p=[0.12, 0.25, 0.30, 0.33])
    declared_null = rng.random(n) < 0.03
    favourites: list[list[str] | None] = []
    for i in range(n):
        if declared_null[i]:
            favourites.append(None)
            continue
        chosen: list[str] = []
        for g in ranked[i, :n_declared[i]].tolist():
            if GENRES[g] not in chosen:
                chosen.append(GENRES[g])
        favourites.append(chosen)

    w = _Words(rng)
    names, streets = [], []
    for _ in range(n):
        first, last = w(_FIRST_PL), w(_LAST_PL)
        if first.endswith("a") and last.endswith("i"):   # Kowalski -> Kowalska
            last = last[:-1] + "a"
        names.append(f"{first} {last}")
        flat = f"/{w(range(1, 80))}" if w.chance(0.6) else ""
        streets.append(f"{w(('ul.', 'ul.', 'ul.', 'al.', 'pl.'))} {w(_STREETS)} "
                       f"{w(range(1, 150))}{flat}")
    cities = [_CITIES[c] for c in rng.choice(len(_CITIES), size=n, p=_CITY_SHARE).tolist()]

    activity = rng.lognormal(0.0, 1.0, size=n)
    activity = np.minimum(activity, 8 * np.median(activity))
    n_silent = round(SILENT_USERS * n) if n >= 10 else 0
    activity[rng.choice(n, size=max(n_silent, 1 if n >= 10 else 0), replace=False)] = 0
    return _Users(ids=np.arange(101, 101 + n, dtype=np.int64), names=names, cities=cities,
                  streets=streets, premium=rng.random(n) < 0.25, favourite_genres=favourites,
                  taste_start=start.astype(np.float32), taste_end=end.astype(np.float32),
                  mainstream=rng.uniform(1.5, 3.5, size=n) * (1 + overlap), activity=activity)


# --------------------------------------------------------------------------------------------
# Listening simulation
# --------------------------------------------------------------------------------------------
@dataclass
class _Events:
    """All valid events in file order (sessions by start time, events by time within them)."""

    session_id: np.ndarray   # int64
    time_us: np.ndarray      # int64 microseconds since PERIOD_START
    legacy: np.ndarray       # bool: written without fraction of a second
    user: np.ndarray         # int64 user index
    track: np.ndarray        # int64 track index, -1 for adverts
    kind: np.ndarray         # int8 code into _EVENT_TYPES
    sessions: int


def _session_starts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds since PERIOD_START, with more listening at commute time and in the evening."""
    hour_w = np.array([2, 1, 1, 1, 1, 2, 4, 7, 8, 6, 5, 5, 6, 6, 5, 5, 6, 8, 9, 10, 10, 9, 7, 4],
                      dtype=float)
    day = rng.integers(0, PERIOD_DAYS, size=n)
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    return day * 86400.0 + hour * 3600.0 + rng.random(n) * 3600.0


def _pick_tracks(rng_u: np.ndarray, users: np.ndarray, taste: np.ndarray, mainstream: np.ndarray,
                 cat: _Catalogue, log_pop: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling from each user's softmax over all tracks, a block of users at a time.

    ``users`` must be sorted; one row-offset CDF per block turns all of the block's draws into a
    single searchsorted.
    """
    out = np.empty(len(users), dtype=np.int64)
    n_tracks = len(cat.track_ids)
    vt = cat.track_vectors.T.astype(np.float64)
    bounds = np.searchsorted(users, np.arange(0, taste.shape[0] + _USER_CHUNK, _USER_CHUNK))
    for b in range(len(bounds) - 1):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        first = b * _USER_CHUNK
        block = np.arange(first, min(first + _USER_CHUNK, taste.shape[0]))
        logits = (TASTE_SHARPNESS * (taste[block].astype(np.float64) @ vt)
                  + mainstream[block, None] * log_pop[None, :])
        logits -= logits.max(axis=1, keepdims=True)
        cdf = np.cumsum(np.exp(logits), axis=1)
        cdf /= cdf[:, -1:]
        cdf += np.arange(len(block))[:, None]
        row = users[lo:hi] - first
        idx = np.searchsorted(cdf.ravel(), row + rng_u[lo:hi], side="right")
        out[lo:hi] = np.minimum(idx - row * n_tracks, n_tracks - 1)
    return out


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _simulate(rng: np.random.Generator, n_sessions: int, users: _Users,
              cat: _Catalogue) -> _Events:
    n_users = len(users.ids)
    n_tracks = len(cat.track_ids)
    period_s = PERIOD_DAYS * 86400.0

    # Sessions: who, roughly when, and how many tracks.
    per_user = rng.multinomial(n_sessions, users.activity / users.activity.sum())
    s_user = np.repeat(np.arange(n_users), per_user)
    s_start = _session_starts(rng, n_sessions)
    order = np.lexsort((s_start, s_user))
    s_start = s_start[order]                     # s_user is already sorted
    t_frac = np.clip(s_start / period_s, 0, 1)
    session_len = rng.lognormal(0, 0.35, n_users)
    mean_len = TRACKS_PER_SESSION * session_len / session_len.mean()
    n_heard = np.minimum(rng.geometric(1 / mean_len[s_user]), 60)

    # Heard tracks: mostly by the taste of the moment (start or end taste, the end one more
    # likely as time goes on), with popularity and some exploration.
    d_sess = np.repeat(np.arange(n_sessions), n_heard)
    d_user = s_user[d_sess]
    d_t = t_frac[d_sess]
    n_draws = len(d_sess)
    explore = rng.random(n_draws) < EXPLORE
    late = rng.random(n_draws) < d_t
    u = rng.random(n_draws)
    log_pop = np.log((cat.popularity + 5) / 105.0)
    track = np.empty(n_draws, dtype=np.int64)
    pop_cdf = np.cumsum(np.exp(1.5 * log_pop))
    track[explore] = np.minimum(np.searchsorted(pop_cdf / pop_cdf[-1], u[explore], "right"),
                                n_tracks - 1)
    for is_late, taste in ((False, users.taste_start), (True, users.taste_end)):
        sel = ~explore & (late == is_late)
        track[sel] = _pick_tracks(u[sel], d_user[sel], taste, users.mainstream, cat, log_pop)

    # How much the listener enjoys it now, under the taste interpolated to the session's time.
    aff = np.empty(n_draws)
    for lo in range(0, n_draws, _WRITE_CHUNK):
        sl = slice(lo, lo + _WRITE_CHUNK)
        t = d_t[sl, None]
        now = _unit((1 - t) * users.taste_start[d_user[sl]] + t * users.taste_end[d_user[sl]])
        dot = np.einsum("ij,ij->i", now, cat.track_vectors[track[sl]])
        aff[sl] = _sigmoid(SCALE * dot + cat.track_bias[track[sl]] + OFFSET)
    skip = rng.random(n_draws) < 0.12 + 0.8 * (1 - aff)
    like = ~skip & (rng.random(n_draws) < 0.2 * aff ** 4)
    liked = np.flatnonzero(like)                 # a song is liked once, the first time
    _, first = np.unique(d_user[liked] * n_tracks + track[liked], return_index=True)
    like[:] = False
    like[liked[first]] = True
    advert = ~users.premium[d_user] & (rng.random(n_draws) < ADVERT_RATE)

    # Timing in microseconds. Every gap is at least a second, so timestamps within a session
    # stay strictly increasing even when written without the fraction.
    sec = 1_000_000
    duration = cat.features["duration_ms"][track] * 1000
    skipped_at = 5 * sec + (rng.beta(1.2, 3.0, n_draws) * np.maximum(0.6 * duration - 5 * sec,
                                                                      0)).astype(np.int64)
    listened = np.where(skip, skipped_at, duration)
    like_at = sec + (rng.random(n_draws) * (listened - 2 * sec)).astype(np.int64)
    advert_len = rng.integers(15, 31, n_draws) * sec
    step = listened + advert * (sec + advert_len) + sec + rng.exponential(2 * sec, n_draws
                                                                            ).astype(np.int64)
    cum = np.cumsum(step) - step
    first_draw = _segment_starts(n_heard)
    offset_in_session = cum - cum[first_draw][d_sess]
    s_len = np.add.reduceat(step, first_draw) if n_draws else np.zeros(0, np.int64)

    # Push a user's overlapping sessions apart (a minute's break at least), vectorised as a
    # segmented running maximum: start_i = C_i + max_{j<=i}(s_j - C_j) within each user.
    s_start_us = (s_start * sec).astype(np.int64)
    need = s_len + 60 * sec
    c = np.cumsum(need) - need
    c -= c[np.repeat(_segment_starts(per_user), per_user)]
    x = s_start_us - c
    span = int(x.max() - x.min()) + 1 if n_sessions else 1
    if n_users * span >= 2**62:
        raise ValueError("too many users for the session layout")
    shift = s_user.astype(np.int64) * span
    s_start_us = np.maximum.accumulate(x - x.min() + shift) - shift + x.min() + c

    # Sessions are numbered and written in order of their start.
    s_rank = np.empty(n_sessions, dtype=np.int64)
    s_rank[np.lexsort((s_user, s_start_us))] = np.arange(n_sessions)
    legacy = rng.random(n_sessions) < LEGACY_SESSIONS
    d_order = np.argsort(s_rank[d_sess], kind="stable")

    play_at = s_start_us[d_sess] + offset_in_session
    times = np.column_stack([play_at, play_at + like_at, play_at + listened,
                             play_at + listened + sec])[d_order]
    present = np.column_stack([np.ones(n_draws, bool), like, skip, advert])[d_order]
    rows, kind = np.nonzero(present)
    ev_sess = d_sess[d_order][rows]
    ev_legacy = legacy[ev_sess]
    time_us = times[rows, kind]
    time_us[ev_legacy] -= time_us[ev_legacy] % sec
    return _Events(session_id=s_rank[ev_sess] + 1, time_us=time_us, legacy=ev_legacy,
                   user=d_user[d_order][rows], kind=kind.astype(np.int8),
                   track=np.where(kind == ADVERT, -1, track[d_order][rows]),
                   sessions=n_sessions)


# --------------------------------------------------------------------------------------------
# Writing (and spoiling) the files
# --------------------------------------------------------------------------------------------
def _interleave(rng: np.random.Generator, lines: list[str], extra: list[str]) -> list[str]:
    """Scatter fault rows among the valid ones, keeping the valid rows' order."""
    if not extra:
        return lines
    total = len(lines) + len(extra)
    at = set(rng.choice(total, size=len(extra), replace=False).tolist())
    valid, bad = iter(lines), iter(extra)
    return [next(bad) if i in at else next(valid) for i in range(total)]


def _write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines))
        fh.write("\n")


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def _write_artists(path: Path, rng: np.random.Generator, cat: _Catalogue, faults: bool,
                   fresh_ids: _FreshIds, counts: dict[str, int]) -> None:
    lines = [_dumps({"id": aid, "name": name, "genres": [GENRES[g] for g in gs]})
             for aid, name, gs in zip(cat.artist_ids.tolist(), cat.artist_names,
                                      cat.artist_genres)]
    n = len(lines)
    bad = []
    # Fault rows are extra rows without tracks, so skipping them loses nothing valid.
    counts["fault_artist_id_-1"] = _fault_count(faults, FAULT_RATE["artists"], n)
    counts["fault_artist_genres_null"] = _fault_count(faults, FAULT_RATE["artists"], n)
    for _ in range(counts["fault_artist_id_-1"]):
        a = int(rng.integers(n))
        bad.append(_dumps({"id": -1, "name": cat.artist_names[a],
                           "genres": [GENRES[g] for g in cat.artist_genres[a]]}))
    for _ in range(counts["fault_artist_genres_null"]):
        bad.append(_dumps({"id": fresh_ids.pop(), "name": cat.artist_names[int(rng.integers(n))],
                           "genres": None}))
    lines = _interleave(rng, lines, bad)
    counts["artists_rows"] = len(lines)
    _write_lines(path, lines)


def _track_row(cat: _Catalogue, i: int) -> dict:
    f = cat.features
    return {
        "id": str(cat.track_ids[i]), "name": cat.track_names[i],
        "popularity": int(cat.popularity[i]), "duration_ms": int(f["duration_ms"][i]),
        "explicit": int(f["explicit"][i]), "id_artist": str(cat.artist_ids[cat.track_artist[i]]),
        "release_date": cat.release_date[i],
        "danceability": round(float(f["danceability"][i]), 3),
        "energy": round(float(f["energy"][i]), 3), "key": int(f["key"][i]),
        "loudness": round(float(f["loudness"][i]), 3),
        "speechiness": round(float(f["speechiness"][i]), 4),
        "acousticness": round(float(f["acousticness"][i]), 4),
        "instrumentalness": round(float(f["instrumentalness"][i]), 4),
        "liveness": round(float(f["liveness"][i]), 3),
        "valence": round(float(f["valence"][i]), 3), "tempo": round(float(f["tempo"][i]), 3),
    }


def _write_tracks(path: Path, rng: np.random.Generator, cat: _Catalogue, faults: bool,
                  fresh_ids: _FreshIds, counts: dict[str, int]) -> None:
    n = len(cat.track_ids)
    lines = [_dumps(_track_row(cat, i)) for i in range(n)]
    counts["fault_track_id_null"] = _fault_count(faults, FAULT_RATE["tracks"], n)
    counts["fault_track_unknown_artist"] = _fault_count(faults, FAULT_RATE["tracks"], n)
    bad = []
    for _ in range(counts["fault_track_id_null"]):
        bad.append(_dumps(_track_row(cat, int(rng.integers(n))) | {"id": None}))
    for _ in range(counts["fault_track_unknown_artist"]):
        row = _track_row(cat, int(rng.integers(n)))
        bad.append(_dumps(row | {"id": fresh_ids.pop(), "id_artist": fresh_ids.pop()}))
    lines = _interleave(rng, lines, bad)
    counts["tracks_rows"] = len(lines)
    _write_lines(path, lines)


def _storage_rows(rng: np.random.Generator, track_ids: list[str], popularity: np.ndarray,
                  duration_ms: np.ndarray) -> list[str]:
    """Popular tracks sit on faster, dearer storage; the cost scales with the file size."""
    noisy = popularity + rng.normal(0, 8, len(track_ids))
    cls = np.select([noisy >= 55, noisy >= 25], [2, 1], 0)
    rate = np.array([0.0004, 0.0011, 0.0035])[cls]                 # per MB and day
    size_mb = duration_ms / 1000 * 0.04 * rng.uniform(0.9, 1.1, len(track_ids))
    names = [("slow", "medium", "fast")[c] for c in cls.tolist()]
    return [_dumps({"track_id": t, "storage_class": c, "daily_cost": round(cost, 6)})
            for t, c, cost in zip(track_ids, names, (size_mb * rate).tolist())]


def _write_storage(path: Path, rng: np.random.Generator, cat: _Catalogue, faults: bool,
                   fresh_ids: _FreshIds, counts: dict[str, int]) -> None:
    n = len(cat.track_ids)
    lines = _storage_rows(rng, cat.track_ids.tolist(), cat.popularity,
                          cat.features["duration_ms"])
    k = counts["fault_storage_unknown_track"] = _fault_count(
        faults, FAULT_RATE["track_storage"], n)
    bad = _storage_rows(rng, [fresh_ids.pop() for _ in range(k)], rng.integers(0, 60, k),
                        rng.integers(120_000, 300_000, k))
    lines = _interleave(rng, lines, bad)
    counts["track_storage_rows"] = len(lines)
    _write_lines(path, lines)


def _write_users(path: Path, users: _Users, counts: dict[str, int]) -> None:
    lines = [_dumps({"user_id": int(uid), "name": users.names[i], "city": users.cities[i],
                     "street": users.streets[i], "favourite_genres": users.favourite_genres[i],
                     "premium_user": bool(users.premium[i])})
             for i, uid in enumerate(users.ids.tolist())]
    counts["users_rows"] = len(lines)
    _write_lines(path, lines)


_EVENT_FORMAT = ('{"session_id": %s, "timestamp": "%s", "user_id": %s, "track_id": %s, '
                 '"event_type": %s}')


def _write_sessions(path: Path, rng: np.random.Generator, ev: _Events, users: _Users,
                    cat: _Catalogue, faults: bool, fresh_ids: _FreshIds,
                    counts: dict[str, int], progress: bool) -> None:
    """Format events a block at a time from lookup tables of ready-made JSON values.

    Faults are applied to the code columns first (null or unknown entries in the tables), so
    the formatting loop knows nothing about them.
    """
    n = len(ev.kind)
    kinds = ["fault_event_session_null", "fault_event_user_null", "fault_event_type_null",
             "fault_event_track_null", "fault_event_unknown_user", "fault_event_unknown_track"]
    # Each faulty row has exactly one fault and is a play, like or skip (a tiny world may not
    # have enough of them for every kind).
    candidates = rng.permutation(np.flatnonzero(ev.kind != ADVERT))
    need = 0
    for k in kinds:
        counts[k] = min(_fault_count(faults, FAULT_RATE["events"], n), len(candidates) - need)
        need += counts[k]
    counts["fault_event_duplicate_runs"] = min(
        _fault_count(faults, FAULT_RATE["duplicate_runs"], n), n - need)
    chosen = dict(zip(kinds, np.split(candidates[:need],
                                      np.cumsum([counts[k] for k in kinds])[:-1])))

    session_null = np.zeros(n, bool)
    session_null[chosen["fault_event_session_null"]] = True
    n_users = len(users.ids)
    unknown_users = users.ids[-1] + 1000 + rng.choice(10**6, size=counts[kinds[4]], replace=False)
    user_table = np.array([str(u) for u in users.ids.tolist()] + ["null"]
                          + [str(u) for u in unknown_users.tolist()], dtype=object)
    user_code = ev.user.copy()
    user_code[chosen["fault_event_user_null"]] = n_users
    user_code[chosen["fault_event_unknown_user"]] = n_users + 1 + np.arange(len(unknown_users))
    n_tracks = len(cat.track_ids)
    unknown_tracks = [fresh_ids.pop() for _ in range(counts[kinds[5]])]
    track_table = np.array([f'"{t}"' for t in cat.track_ids.tolist()] + ["null"]
                           + [f'"{t}"' for t in unknown_tracks], dtype=object)
    track_code = np.where(ev.track < 0, n_tracks, ev.track)
    track_code[chosen["fault_event_track_null"]] = n_tracks
    track_code[chosen["fault_event_unknown_track"]] = n_tracks + 1 + np.arange(len(unknown_tracks))
    type_table = np.array([f'"{t}"' for t in _EVENT_TYPES] + ["null"], dtype=object)
    type_code = ev.kind.astype(np.int64)
    type_code[chosen["fault_event_type_null"]] = len(_EVENT_TYPES)

    # Duplicate runs: 2-4 identical rows in a row, copies of otherwise valid rows.
    copies = np.ones(n, dtype=np.int64)
    spoiled = np.zeros(n, bool)
    spoiled[candidates[:need]] = True
    dup = rng.permutation(np.flatnonzero(~spoiled))[:counts["fault_event_duplicate_runs"]]
    copies[dup] = rng.integers(2, 5, size=len(dup))
    counts["fault_event_duplicate_rows"] = int(copies.sum() - n)
    out_rows = np.repeat(np.arange(n), copies)
    # One line cut short, as if a write had been interrupted; never inside a duplicate run.
    run_starts = _segment_starts(copies)
    bad_json_at = int(run_starts[rng.integers(n)]) if faults and n else -1
    counts["fault_event_bad_json"] = int(bad_json_at >= 0)

    bar = tqdm(total=len(out_rows), desc="sessions.jsonl", unit="row", disable=not progress,
               leave=False)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for lo in range(0, len(out_rows), _WRITE_CHUNK):
            rows = out_rows[lo:lo + _WRITE_CHUNK]
            stamps = PERIOD_START + ev.time_us[rows].astype("timedelta64[us]")
            ts = np.datetime_as_string(stamps, unit="us").astype(object)
            legacy = ev.legacy[rows]
            ts[legacy] = np.datetime_as_string(stamps[legacy], unit="s").astype(object)
            sids = [str(s) for s in ev.session_id[rows].tolist()]
            for j in np.flatnonzero(session_null[rows]).tolist():
                sids[j] = "null"
            lines = list(map(_EVENT_FORMAT.__mod__, zip(
                sids, ts.tolist(), user_table[user_code[rows]].tolist(),
                track_table[track_code[rows]].tolist(), type_table[type_code[rows]].tolist())))
            if lo <= bad_json_at < lo + len(rows):
                whole = lines[bad_json_at - lo]
                lines.insert(bad_json_at - lo, whole[: len(whole) // 2])
            fh.write("\n".join(lines))
            fh.write("\n")
            bar.update(len(rows))
    bar.close()

    faulty = need + counts["fault_event_duplicate_rows"]
    counts["sessions_rows"] = len(out_rows) + counts["fault_event_bad_json"]
    counts["events"] = n - need                      # valid, distinct rows
    valid = np.ones(n, bool)
    valid[candidates[:need]] = False
    for code, name in ((PLAY, "plays"), (SKIP, "skips"), (LIKE, "likes"), (ADVERT, "adverts")):
        counts[name] = int(np.count_nonzero(valid & (ev.kind == code)))
    counts["faulty_event_rows"] = faulty + counts["fault_event_bad_json"]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def generate_export(out_dir: Path, *, users: int = 1100, tracks: int = 20000,
                    sessions: int | None = None, seed: int = 0, faults: bool = True,
                    taste_overlap: float = 0.0, progress: bool = False) -> dict[str, int]:
    """Write a synthetic export (five JSONL files and ``ground_truth.npz``) into ``out_dir``.

    ``taste_overlap`` (0..1) makes a world of friends: random groups of the default world
    already disagree, so a group strategy must be measured on people who overlap too (shared
    genres, popular tracks weighing more) to be tuned to neither. 0 leaves every byte as it was.

    Returns counts for the command line to print: rows per file, valid entities and events,
    and how many faults of each kind were injected (all zero with ``faults=False``).
    """
    if users < 1 or tracks < 10:
        raise ValueError("need at least one user and ten tracks")
    if not 0.0 <= taste_overlap <= 1.0:
        raise ValueError("taste_overlap must be between 0 and 1")
    n_sessions = SESSIONS_PER_USER * users if sessions is None else int(sessions)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_cat, rng_users, rng_listen, rng_faults, rng_storage, rng_ids = streams

    stages = tqdm(total=7, desc="generate", unit="stage", disable=not progress)

    def done(stage: str) -> None:
        stages.set_postfix_str(stage)
        stages.update()

    cat = _make_catalogue(rng_cat, tracks)
    if taste_overlap:  # popularity sways the true affinity (and so skips and likes) more
        cat.track_bias = (cat.track_bias * (1 + taste_overlap)).astype(np.float32)
    done("catalogue")
    population = _make_users(rng_users, users, cat, taste_overlap)
    done("users")
    events = _simulate(rng_listen, n_sessions, population, cat)
    done("listening")

    fresh_ids = _FreshIds(rng_ids, set(cat.track_ids.tolist()) | set(cat.artist_ids.tolist()))

    counts: dict[str, int] = {}
    _write_users(out_dir / "users.jsonl", population, counts)
    _write_artists(out_dir / "artists.jsonl", rng_faults, cat, faults, fresh_ids, counts)
    _write_tracks(out_dir / "tracks.jsonl", rng_faults, cat, faults, fresh_ids, counts)
    _write_storage(out_dir / "track_storage.jsonl", rng_storage, cat, faults, fresh_ids, counts)
    done("catalogue files")
    _write_sessions(out_dir / "sessions.jsonl", rng_faults, events, population, cat, faults,
                    fresh_ids, counts, progress)
    done("sessions.jsonl")
    GroundTruth(user_ids=population.ids, track_ids=cat.track_ids,
                user_taste=population.taste_end, track_vectors=cat.track_vectors,
                track_bias=cat.track_bias, scale=SCALE, offset=OFFSET
                ).save(out_dir / GroundTruth.FILENAME)
    done("ground truth")

    summary = {
        "users": users,
        "users_without_sessions": users - len(np.unique(events.user)),
        "users_genres_null": sum(g is None for g in population.favourite_genres),
        "artists": len(cat.artist_ids),
        "tracks": len(cat.track_ids),
        "tracks_rereleased": cat.rereleased,
        "sessions": events.sessions,
    }
    # Valid events first, then lines per file, then the faults.
    for key in ("events", "plays", "skips", "likes", "adverts"):
        summary[key] = counts.pop(key)
    summary.update(sorted(counts.items(), key=lambda kv: kv[0].startswith("fault")))
    done("done")
    stages.close()
    return summary
