"""The simulated world behind a generated export: catalogue, listeners and their listening.

Everything is drawn with numpy from the random streams the caller hands in (one per stage), so the
same streams give the same world. Listening is simulated for all sessions at once; only the
catalogue and the users (tens of thousands of rows at most) are built row by row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.data.generator.ground_truth import sigmoid
from app.data.generator.vocabulary import (
    ADVERT, BASE62, CITIES, CITY_SHARE, FAMILY_PROFILE, FAMILY_SHARE, FIRST_PL, GENRE_FAMILIES,
    GENRE_OVERRIDES, GENRES, LAST_PL, NEIGHBOURS, STREETS, Words, artist_name, track_name,
)

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
WRITE_CHUNK = 100_000                   # events per formatted block


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _spotify_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """22-char base62 ids; the first character stays below '8' as in real 128-bit Spotify ids."""
    codes = rng.integers(0, 62, size=(n, 22))
    codes[:, 0] = rng.integers(0, 8, size=n)
    alphabet = np.array([ord(c) for c in BASE62], dtype=np.uint32)
    return np.ascontiguousarray(alphabet[codes]).view("<U22").ravel()


def _beta(rng: np.random.Generator, mean: np.ndarray, concentration: float) -> np.ndarray:
    mean = np.clip(mean, 0.02, 0.98)
    return rng.beta(mean * concentration, (1 - mean) * concentration)


def fault_count(enabled: bool, rate: float, rows: int) -> int:
    """A sprinkling proportional to the file, but at least one of each kind in a small world."""
    return max(1, round(rate * rows)) if enabled else 0


class FreshIds:
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


# --------------------------------------------------------------------------------------------
# The catalogue: genres, artists, tracks
# --------------------------------------------------------------------------------------------
@dataclass
class Catalogue:
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
    for a, b in NEIGHBOURS:
        ia, ib = families.index(a), families.index(b)
        fam[ia] += 0.35 * base[ib]
        fam[ib] += 0.35 * base[ia]
    # Centred, so that unrelated families are apart instead of sharing a common "likes music"
    # direction that would make every track half-liked by everyone.
    share = np.array([FAMILY_SHARE[f] for f in families])
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
        w.extend(FAMILY_SHARE[family] * inner / inner.sum())
    return np.array(w)


def _genre_profiles() -> np.ndarray:
    """(G, len(_Profile)) table of per-genre feature means."""
    rows = []
    for family, genres in GENRE_FAMILIES.items():
        for g in genres:
            rows.append(FAMILY_PROFILE[family]._replace(**GENRE_OVERRIDES.get(g, {})))
    return np.array(rows, dtype=np.float64)


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


def make_catalogue(rng: np.random.Generator, n_tracks: int) -> Catalogue:
    genre_family, genre_vecs = _genre_space(rng)
    genre_w = _genre_weights()
    profiles = _genre_profiles()
    n_genres = len(GENRES)

    # Artists: a primary genre drives their sound and era; extra genres mostly from its family.
    n_artists = max(5, n_tracks // 8)
    primary = rng.choice(n_genres, size=n_artists, p=genre_w)
    n_extra = rng.choice(3, size=n_artists, p=[0.45, 0.35, 0.20])
    families = list(GENRE_FAMILIES)
    related = {f: [f] + [b if a == f else a for a, b in NEIGHBOURS if f in (a, b)]
               for f in families}
    pick = Words(rng)
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
    words = Words(rng)
    artist_names = [artist_name(words, GENRES[primary[a]]) for a in range(n_artists)]

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
    popularity = np.round(100 * sigmoid(-1.4 + 0.9 * artist_fame[artist] - 0.012 * age
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
        name = track_name(words, GENRES[primary[a]], bool(live[i]), bool(is_hip_hop[i]))
        attempt = 1
        while (name, a) in taken:
            attempt += 1
            name = track_name(words, GENRES[primary[a]], bool(live[i]), bool(is_hip_hop[i]))
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
    return Catalogue(
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
class Users:
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


def _draw_tastes(rng: np.random.Generator, n: int, cat: Catalogue,
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


def make_users(rng: np.random.Generator, n: int, cat: Catalogue,
                overlap: float = 0.0) -> Users:
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

    w = Words(rng)
    names, streets = [], []
    for _ in range(n):
        first, last = w(FIRST_PL), w(LAST_PL)
        if first.endswith("a") and last.endswith("i"):   # Kowalski -> Kowalska
            last = last[:-1] + "a"
        names.append(f"{first} {last}")
        flat = f"/{w(range(1, 80))}" if w.chance(0.6) else ""
        streets.append(f"{w(('ul.', 'ul.', 'ul.', 'al.', 'pl.'))} {w(STREETS)} "
                       f"{w(range(1, 150))}{flat}")
    cities = [CITIES[c] for c in rng.choice(len(CITIES), size=n, p=CITY_SHARE).tolist()]

    activity = rng.lognormal(0.0, 1.0, size=n)
    activity = np.minimum(activity, 8 * np.median(activity))
    n_silent = round(SILENT_USERS * n) if n >= 10 else 0
    activity[rng.choice(n, size=max(n_silent, 1 if n >= 10 else 0), replace=False)] = 0
    return Users(ids=np.arange(101, 101 + n, dtype=np.int64), names=names, cities=cities,
                  streets=streets, premium=rng.random(n) < 0.25, favourite_genres=favourites,
                  taste_start=start.astype(np.float32), taste_end=end.astype(np.float32),
                  mainstream=rng.uniform(1.5, 3.5, size=n) * (1 + overlap), activity=activity)


# --------------------------------------------------------------------------------------------
# Listening simulation
# --------------------------------------------------------------------------------------------
@dataclass
class Events:
    """All valid events in file order (sessions by start time, events by time within them)."""

    session_id: np.ndarray   # int64
    time_us: np.ndarray      # int64 microseconds since PERIOD_START
    legacy: np.ndarray       # bool: written without fraction of a second
    user: np.ndarray         # int64 user index
    track: np.ndarray        # int64 track index, -1 for adverts
    kind: np.ndarray         # int8 code into EVENT_TYPES
    sessions: int


def _session_starts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds since PERIOD_START, with more listening at commute time and in the evening."""
    hour_w = np.array([2, 1, 1, 1, 1, 2, 4, 7, 8, 6, 5, 5, 6, 6, 5, 5, 6, 8, 9, 10, 10, 9, 7, 4],
                      dtype=float)
    day = rng.integers(0, PERIOD_DAYS, size=n)
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    return day * 86400.0 + hour * 3600.0 + rng.random(n) * 3600.0


def _pick_tracks(rng_u: np.ndarray, users: np.ndarray, taste: np.ndarray, mainstream: np.ndarray,
                 cat: Catalogue, log_pop: np.ndarray) -> np.ndarray:
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


def segment_starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def simulate(rng: np.random.Generator, n_sessions: int, users: Users,
              cat: Catalogue) -> Events:
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
    for lo in range(0, n_draws, WRITE_CHUNK):
        sl = slice(lo, lo + WRITE_CHUNK)
        t = d_t[sl, None]
        now = _unit((1 - t) * users.taste_start[d_user[sl]] + t * users.taste_end[d_user[sl]])
        dot = np.einsum("ij,ij->i", now, cat.track_vectors[track[sl]])
        aff[sl] = sigmoid(SCALE * dot + cat.track_bias[track[sl]] + OFFSET)
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
    first_draw = segment_starts(n_heard)
    offset_in_session = cum - cum[first_draw][d_sess]
    s_len = np.add.reduceat(step, first_draw) if n_draws else np.zeros(0, np.int64)

    # Push a user's overlapping sessions apart (a minute's break at least), vectorised as a
    # segmented running maximum: start_i = C_i + max_{j<=i}(s_j - C_j) within each user.
    s_start_us = (s_start * sec).astype(np.int64)
    need = s_len + 60 * sec
    c = np.cumsum(need) - need
    c -= c[np.repeat(segment_starts(per_user), per_user)]
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
    return Events(session_id=s_rank[ev_sess] + 1, time_us=time_us, legacy=ev_legacy,
                   user=d_user[d_order][rows], kind=kind.astype(np.int8),
                   track=np.where(kind == ADVERT, -1, track[d_order][rows]),
                   sessions=n_sessions)
