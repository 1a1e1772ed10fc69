"""An in-memory interaction data set that every loader produces and every model consumes.

The recommender never reads the database while it trains or evaluates: a loader turns a source
(the database: ``app.modelstore.loaders``; a Pozytywka export folder: ``load_from_export`` here; the
Last.fm HetRec set: ``offline.lastfm``) into one ``InteractionData``, and features, training and
evaluation work on its plain numpy arrays. The Last.fm loader maps artists to items
(``item_artist`` = the item itself), tags to ``item_genres``, listen counts to events of kind
``COUNT`` and friendships to ``groups``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from app.recommender.idmap import IdMap

# Event kinds. COUNT carries a repeat count in ``EventLog.value`` (Last.fm listen counts).
PLAY, SKIP, LIKE, COUNT = 0, 1, 2, 3
KIND_CODES = {"play": PLAY, "skip": SKIP, "like": LIKE, "count": COUNT}

AUDIO_COLUMNS = ("danceability", "energy", "speechiness", "acousticness", "instrumentalness",
                 "liveness", "valence", "loudness", "tempo")


@dataclass(frozen=True)
class EventLog:
    """One row per event, in no particular order; indices point into the data set's users/items."""

    user: np.ndarray   # int32
    item: np.ndarray   # int32
    time: np.ndarray   # float64, seconds since the epoch
    kind: np.ndarray   # int8, PLAY / SKIP / LIKE / COUNT
    value: np.ndarray  # float32, 1 for single events, the count for COUNT

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask_or_index: np.ndarray) -> "EventLog":
        return EventLog(self.user[mask_or_index], self.item[mask_or_index],
                        self.time[mask_or_index], self.kind[mask_or_index],
                        self.value[mask_or_index])


@dataclass(frozen=True)
class ItemMeta:
    """What is known about each item besides who listened to it (arrays aligned with items)."""

    artist: np.ndarray       # int32 index into artist_ids
    artist_ids: np.ndarray   # str
    artist_names: np.ndarray  # str
    song: np.ndarray         # int32: equal for the same song under several ids (name + artist)
    explicit: np.ndarray     # bool
    popularity: np.ndarray   # float32 in [0, 1] (the catalogue's own popularity field)
    year: np.ndarray         # int16, 0 when unknown
    audio: np.ndarray        # float32 (items x len(audio_names)); may have zero columns
    audio_names: tuple[str, ...] = AUDIO_COLUMNS


@dataclass(frozen=True)
class InteractionData:
    user_ids: np.ndarray      # int64 external ids, position = internal index
    item_ids: np.ndarray      # str external ids
    events: EventLog
    items: ItemMeta
    genre_names: np.ndarray   # str; vocabulary of item_genres and user_genres columns
    item_genres: sp.csr_matrix  # items x genres, 0/1
    user_genres: sp.csr_matrix  # users x genres, 0/1 (declared favourite genres)
    groups: list[np.ndarray] = field(default_factory=list)  # real groups (user indices), if any
    source: str = ""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def with_events(self, events: EventLog) -> "InteractionData":
        return replace(self, events=events)

    def split_by_time(self, cutoff: float) -> tuple["InteractionData", EventLog]:
        """Train on what happened before ``cutoff``; the later events are the test log."""
        before = self.events.time < cutoff
        return self.with_events(self.events.take(before)), self.events.take(~before)

    def time_quantile(self, q: float) -> float:
        return float(np.quantile(self.events.time, q)) if len(self.events) else 0.0

    def history_counts(self) -> np.ndarray:
        """Positive events (plays, likes, counts) per user: 0 means a cold-start user."""
        positive = self.events.kind != SKIP
        return np.bincount(self.events.user[positive], minlength=self.n_users)


def song_keys(names: pd.Series, artist_ids: pd.Series) -> np.ndarray:
    """The same song re-released under another id shares name and artist: one key for both."""
    key = names.fillna("").str.strip().str.casefold() + "\x1f" + artist_ids.fillna("")
    codes, _ = pd.factorize(key, sort=False)
    return codes.astype(np.int32)


def release_years(dates: pd.Series) -> np.ndarray:
    head = dates.fillna("").astype(str).str.slice(0, 4)
    years = pd.to_numeric(head, errors="coerce").fillna(0).astype(np.int16)
    return years.to_numpy()


def genre_matrix(pairs: pd.DataFrame, row_ids: IdMap, key: str,
                 genres: IdMap) -> sp.csr_matrix:
    rows = row_ids.to_internal(pairs[key])
    cols = genres.to_internal(pairs["genre"])
    ok = (rows >= 0) & (cols >= 0)
    data = np.ones(int(ok.sum()), dtype=np.float32)
    m = sp.csr_matrix((data, (rows[ok], cols[ok])), shape=(len(row_ids), len(genres)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def build_items(tracks: pd.DataFrame, artists: pd.DataFrame) -> tuple[np.ndarray, ItemMeta]:
    """Item metadata from a tracks frame (export/DB columns) and an artists frame (id, name)."""
    tracks = tracks.reset_index(drop=True)
    artist_ids = IdMap(pd.unique(pd.concat([artists["id"], tracks["artist_id"]])))
    names = artists.set_index("id")["name"].reindex(artist_ids.external).fillna("") \
        .to_numpy(dtype=str)
    audio_cols = [c for c in AUDIO_COLUMNS if c in tracks.columns]
    audio = tracks[audio_cols].to_numpy(dtype=np.float32) if audio_cols else np.zeros(
        (len(tracks), 0), np.float32)
    meta = ItemMeta(
        artist=artist_ids.to_internal(tracks["artist_id"]).astype(np.int32),
        artist_ids=artist_ids.external.astype(str),
        artist_names=names,
        song=song_keys(tracks["name"], tracks["artist_id"]),
        explicit=tracks["explicit"].astype(bool).to_numpy(),
        popularity=(tracks["popularity"].fillna(0).to_numpy(dtype=np.float32) / 100.0),
        year=release_years(tracks["release_date"]),
        audio=np.nan_to_num(audio),
        audio_names=tuple(audio_cols),
    )
    return tracks["id"].to_numpy(dtype=str), meta


def build_events(frame: pd.DataFrame, users: IdMap, items: IdMap) -> EventLog:
    """Events from a frame with user_id, track_id and either timestamp + event_type (export
    files) or seconds + kind (the database query); adverts and dangling rows dropped."""
    if "kind" in frame.columns:
        kind = frame["kind"].where(frame["kind"] >= 0)
        seconds = frame["seconds"].to_numpy(dtype=np.float64)
    else:
        kind = frame["event_type"].map(KIND_CODES)
        ts = pd.to_datetime(frame["timestamp"], format="ISO8601")
        seconds = ts.astype("datetime64[us]").astype("int64").to_numpy() / 1e6
    user = users.to_internal(frame["user_id"])
    item = items.to_internal(frame["track_id"])
    keep = kind.notna().to_numpy() & (user >= 0) & (item >= 0)
    return EventLog(
        user=user[keep].astype(np.int32),
        item=item[keep].astype(np.int32),
        time=seconds[keep].astype(np.float64),
        kind=kind.to_numpy()[keep].astype(np.int8),
        value=np.ones(int(keep.sum()), dtype=np.float32),
    )


def assemble(users: pd.DataFrame, user_genre_pairs: pd.DataFrame, tracks: pd.DataFrame,
             artists: pd.DataFrame, artist_genre_pairs: pd.DataFrame, events: pd.DataFrame,
             source: str) -> InteractionData:
    """Shared by the database (``app.modelstore.loaders``) and export-folder loaders: frames in, one
    data set out.

    ``user_genre_pairs``: user_id, genre; ``artist_genre_pairs``: artist_id, genre.
    """
    user_ids = users["user_id"].to_numpy(dtype=np.int64)
    users = IdMap(user_ids)
    item_ids, meta = build_items(tracks, artists)
    genres = IdMap(np.asarray(sorted(set(user_genre_pairs["genre"])
                                     | set(artist_genre_pairs["genre"])), dtype=str))
    artist_genres = genre_matrix(artist_genre_pairs, IdMap(meta.artist_ids), "artist_id", genres)
    item_genres = artist_genres[meta.artist].tocsr()
    user_genres = genre_matrix(user_genre_pairs, users, "user_id", genres)
    return InteractionData(
        user_ids=user_ids, item_ids=item_ids,
        events=build_events(events, users, IdMap(item_ids)), items=meta,
        genre_names=genres.external, item_genres=item_genres,
        user_genres=user_genres, source=source,
    )


def load_from_export(directory) -> InteractionData:
    """Read a Pozytywka export folder directly (no import): handy for evaluation on raw exports.

    Bad rows (the faults of real exports) are dropped here without a report; the importer is the
    place that reports them.
    """
    from pathlib import Path

    folder = Path(directory)

    def read(name: str) -> pd.DataFrame:
        path = folder / f"{name}.jsonl"
        try:
            return pd.read_json(path, lines=True, dtype=False)
        except ValueError:  # a line that is not JSON (a fault of real exports): skip it
            import json

            rows = []
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(row, dict):
                        rows.append(row)
            return pd.DataFrame(rows)

    users = read("users")
    users = users[pd.to_numeric(users["user_id"], errors="coerce").notna()]
    users = users.drop_duplicates("user_id")
    ugen = users[["user_id", "favourite_genres"]].explode("favourite_genres").dropna()
    ugen = ugen.rename(columns={"favourite_genres": "genre"})
    artists = read("artists")
    artists = artists[artists["id"].notna() & (artists["id"].astype(str) != "-1")]
    artists = artists.drop_duplicates("id")
    agen = artists[["id", "genres"]].explode("genres").dropna()
    agen = agen.rename(columns={"id": "artist_id", "genres": "genre"})
    tracks = read("tracks").rename(columns={"id_artist": "artist_id"})
    tracks = tracks[tracks["id"].notna() & tracks["artist_id"].isin(artists["id"])]
    tracks = tracks.drop_duplicates("id")
    events = read("sessions").dropna(subset=["user_id", "track_id", "event_type", "timestamp"])
    events = events.drop_duplicates()
    return assemble(users[["user_id"]].astype({"user_id": np.int64}), ugen, tracks,
                    artists[["id", "name"]], agen, events, source=f"export:{folder}")
