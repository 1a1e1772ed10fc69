"""Loader for the Last.fm HetRec 2011 set (``hetrec2011-lastfm-2k``) into an ``InteractionData``.

Why this exists: our own data is generated, so a model that looks good on it might only have
learned the generator. Last.fm is real listening that nobody here made. The mapping keeps the
product's vocabulary so that the same features, training, strategies and metrics run unchanged:

* items are artists; each artist is its own "artist" (``ItemMeta.artist`` = the item);
* listen counts become one event of kind ``COUNT`` per (user, artist) with the count as value
  (``features.event_weights`` log-scales them); there are no listening times, so every event has
  time 0 and time decay does nothing;
* tags become the item "genres": a tag is on an artist when at least ``min_tag_users`` users
  applied it, and only tags used on at least ``min_tag_artists`` artists are kept, so that
  one-off tags ("seen live in 2009") do not become features nobody else shares;
* users have no declared favourite genres;
* friendships give real groups: cliques of mutual friends (everyone in the group is friends with
  everyone else), sampled per size with a fixed seed.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from app.recommender.idmap import IdMap

from app.recommender.dataset import COUNT, EventLog, InteractionData, ItemMeta

FILES = ("artists.dat", "tags.dat", "user_artists.dat", "user_taggedartists.dat",
         "user_friends.dat")


class LastfmError(RuntimeError):
    """The folder is not a HetRec Last.fm folder (a file is missing or has other columns)."""


def _read(folder: Path, name: str, encoding: str = "utf-8") -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise LastfmError(f"{name} is missing in {folder} (a HetRec 2011 Last.fm folder holds "
                          f"{', '.join(FILES)})")
    # QUOTE_NONE: artist names contain stray double quotes; \r\n endings leave a \r on the
    # last column, which str.strip/pd.to_numeric handle below.
    frame = pd.read_csv(path, sep="\t", encoding=encoding, quoting=3, dtype=str,
                        keep_default_na=False)
    frame.columns = [c.strip() for c in frame.columns]
    return frame.apply(lambda col: col.str.strip())


def _ints(frame: pd.DataFrame, columns: list[str], name: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LastfmError(f"{name} lacks column(s) {', '.join(missing)}")
    out = frame[columns].apply(pd.to_numeric, errors="coerce").dropna()
    return out.astype(np.int64)


def read_friend_pairs(folder: str | Path) -> pd.DataFrame:
    return _ints(_read(Path(folder), "user_friends.dat"), ["userID", "friendID"],
                 "user_friends.dat")


def snowball_users(pairs: pd.DataFrame, users: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` users reached by breadth-first walks over friendships from random starts.

    A uniform sample of 150 out of 1,892 users would hold almost no friend pairs; a walk keeps
    friends together, so a small subsample for tests still has real groups.
    """
    rng = np.random.default_rng(seed)
    adj: dict[int, list[int]] = {}
    for a, b in zip(pairs["userID"].to_numpy(), pairs["friendID"].to_numpy()):
        adj.setdefault(int(a), []).append(int(b))
    allowed = set(int(u) for u in users)
    order = rng.permutation(np.asarray(sorted(allowed), dtype=np.int64)).tolist()
    chosen: list[int] = []
    seen: set[int] = set()
    for start in order:
        if len(chosen) >= n:
            break
        if start in seen:
            continue
        queue = deque([start])
        seen.add(start)
        while queue and len(chosen) < n:
            u = queue.popleft()
            chosen.append(u)
            for v in sorted(adj.get(u, ())):
                if v in allowed and v not in seen:
                    seen.add(v)
                    queue.append(v)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def friend_cliques(adjacency: dict[int, set[int]], size: int) -> list[tuple[int, ...]]:
    """Every group of ``size`` users who are all friends with each other (sorted tuples).

    Friendship graphs this size are sparse (about 13 friends per user), so extending each
    smaller clique by common neighbours above its largest member is fast and never repeats one.
    """
    if size < 1:
        return []
    cliques: list[tuple[int, ...]] = [(u,) for u in sorted(adjacency)]
    for _ in range(size - 1):
        grown: list[tuple[int, ...]] = []
        for clique in cliques:
            common = set.intersection(*(adjacency[u] for u in clique))
            grown.extend(clique + (v,) for v in sorted(common) if v > clique[-1])
        cliques = grown
    return cliques


def sample_groups(pairs: pd.DataFrame, user_index: IdMap, sizes: tuple[int, ...],
                  per_size: int, seed: int) -> list[np.ndarray]:
    """Up to ``per_size`` cliques of each size, as arrays of user indices (fixed seed)."""
    rng = np.random.default_rng(seed)
    keep = user_index.to_internal(pairs["userID"]) >= 0
    keep &= user_index.to_internal(pairs["friendID"]) >= 0
    adjacency: dict[int, set[int]] = {}
    for a, b in zip(pairs["userID"].to_numpy()[keep], pairs["friendID"].to_numpy()[keep]):
        if a != b:  # "mutual": the file lists both directions; require both to be present
            adjacency.setdefault(int(a), set()).add(int(b))
    mutual = {u: {v for v in vs if u in adjacency.get(v, ())} for u, vs in adjacency.items()}
    groups: list[np.ndarray] = []
    for size in sizes:
        cliques = friend_cliques(mutual, size)
        if len(cliques) > per_size:
            pick = np.sort(rng.choice(len(cliques), size=per_size, replace=False))
            cliques = [cliques[i] for i in pick]
        groups.extend(user_index.to_internal(list(c)) for c in cliques)
    return groups


def load_lastfm(path: str | Path, *, max_users: int | None = None, seed: int = 0,
                min_tag_users: int = 1, min_tag_artists: int = 5, max_tags: int | None = None,
                group_sizes: tuple[int, ...] = (2, 3, 4), groups_per_size: int = 500
                ) -> InteractionData:
    """Read the folder into one data set; ``max_users`` takes a friendship-connected subsample.

    Only artists that some kept user listened to become items (an artist nobody plays cannot be
    evaluated and only slows training).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise LastfmError(f"Last.fm folder {folder} does not exist")
    listens = _ints(_read(folder, "user_artists.dat"), ["userID", "artistID", "weight"],
                    "user_artists.dat")
    listens = listens[listens["weight"] > 0]
    pairs = read_friend_pairs(folder)
    users = np.unique(listens["userID"].to_numpy())
    if max_users is not None and max_users < len(users):
        users = snowball_users(pairs, users, max_users, seed)
        listens = listens[listens["userID"].isin(users)]
    user_index = IdMap(np.asarray(users))
    item_ids_int = np.unique(listens["artistID"].to_numpy())
    item_index = IdMap(item_ids_int)

    artists = _read(folder, "artists.dat")
    if "id" not in artists.columns or "name" not in artists.columns:
        raise LastfmError("artists.dat lacks the id and name columns")
    names = (artists.assign(id=pd.to_numeric(artists["id"], errors="coerce"))
             .dropna(subset=["id"]).astype({"id": np.int64})
             .drop_duplicates("id").set_index("id")["name"])
    item_names = names.reindex(item_ids_int).fillna("").to_numpy(dtype=str)

    tags = _read(folder, "tags.dat", encoding="latin-1")
    tag_names = (tags.assign(tagID=pd.to_numeric(tags.get("tagID"), errors="coerce"))
                 .dropna(subset=["tagID"]).astype({"tagID": np.int64})
                 .drop_duplicates("tagID").set_index("tagID")["tagValue"])
    tagged = _ints(_read(folder, "user_taggedartists.dat"), ["userID", "artistID", "tagID"],
                   "user_taggedartists.dat")
    item_tags, genre_names = _tag_matrix(tagged, item_index, tag_names, min_tag_users,
                                         min_tag_artists, max_tags)

    n_items = len(item_ids_int)
    ids = item_ids_int.astype(str)
    meta = ItemMeta(
        artist=np.arange(n_items, dtype=np.int32),
        artist_ids=ids,
        artist_names=item_names,
        song=np.arange(n_items, dtype=np.int32),
        explicit=np.zeros(n_items, dtype=bool),
        # Deliberately unknown: a catalogue popularity computed from all listens would leak the
        # held-out pairs into the popularity baseline; evaluation counts training listeners.
        popularity=np.zeros(n_items, dtype=np.float32),
        year=np.zeros(n_items, dtype=np.int16),
        audio=np.zeros((n_items, 0), dtype=np.float32),
        audio_names=(),
    )
    n = len(listens)
    events = EventLog(
        user=user_index.to_internal(listens["userID"]).astype(np.int32),
        item=item_index.to_internal(listens["artistID"]).astype(np.int32),
        time=np.zeros(n, dtype=np.float64),
        kind=np.full(n, COUNT, dtype=np.int8),
        value=listens["weight"].to_numpy(dtype=np.float32),
    )
    groups = sample_groups(pairs, user_index, tuple(group_sizes), groups_per_size, seed)
    return InteractionData(
        user_ids=users.astype(np.int64), item_ids=ids, events=events, items=meta,
        genre_names=genre_names, item_genres=item_tags,
        user_genres=sp.csr_matrix((len(users), len(genre_names)), dtype=np.float32),
        groups=groups, source=f"lastfm:{folder}",
    )


def _tag_matrix(tagged: pd.DataFrame, item_index: IdMap, tag_names: pd.Series,
                min_users: int, min_artists: int, max_tags: int | None
                ) -> tuple[sp.csr_matrix, np.ndarray]:
    """Items x kept tags, 0/1. Every user's tags count, not only the kept users': tags are
    metadata about the artist, like an artist's genres in the Pozytywka catalogue.

    ``max_tags``: an artist keeps only the tags most users applied to it. Popular artists carry
    up to 200 tags, most applied once; they are also the artists most listened to, so without
    the cap the hybrid model trains on about 38 features per positive pair instead of about 6.
    """
    per_pair = (tagged.drop_duplicates(["userID", "artistID", "tagID"])
                .groupby(["artistID", "tagID"]).size().rename("users").reset_index())
    per_pair = per_pair[per_pair["users"] >= min_users]
    per_pair = per_pair[item_index.to_internal(per_pair["artistID"]) >= 0]
    spread = per_pair.groupby("tagID")["artistID"].nunique()
    kept = np.sort(spread[spread >= min_artists].index.to_numpy())
    per_pair = per_pair[per_pair["tagID"].isin(kept)]
    if max_tags is not None:
        per_pair = (per_pair.sort_values(["artistID", "users", "tagID"],
                                         ascending=[True, False, True])
                    .groupby("artistID").head(max_tags))
    rows = item_index.to_internal(per_pair["artistID"])
    cols = IdMap(kept).to_internal(per_pair["tagID"])
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                      shape=(len(item_index), len(kept)))
    m.sum_duplicates()
    m.data[:] = 1.0
    raw = tag_names.reindex(kept).fillna("").astype(str).to_numpy()
    # feature vocabularies are keyed by name: a value repeated under two ids gets its id
    names = np.array([f"{name}#{tid}" if dup else name for name, tid, dup in
                      zip(raw, kept, pd.Series(raw).duplicated(keep=False))], dtype=str)
    return m, names


def subset_items(data: InteractionData, keep: np.ndarray) -> InteractionData:
    """The data set without the items not in ``keep`` (bool mask): for the cold-start split the
    held-out artists must not exist at all in training, or LightFM would give them an (untrained)
    identity embedding instead of scoring them from their tags."""
    from dataclasses import replace

    keep = np.asarray(keep, dtype=bool)
    new_pos = np.cumsum(keep) - 1
    ev = data.events
    ok = keep[ev.item]
    events = ev.take(ok)
    events = EventLog(events.user, new_pos[events.item].astype(np.int32), events.time,
                      events.kind, events.value)
    m = data.items
    idx = np.flatnonzero(keep)
    artist_codes, artist_new = np.unique(m.artist[idx], return_inverse=True)
    meta = ItemMeta(artist=artist_new.astype(np.int32), artist_ids=m.artist_ids[artist_codes],
                    artist_names=m.artist_names[artist_codes], song=m.song[idx],
                    explicit=m.explicit[idx], popularity=m.popularity[idx], year=m.year[idx],
                    audio=m.audio[idx], audio_names=m.audio_names)
    return replace(data, item_ids=data.item_ids[idx], events=events, items=meta,
                   item_genres=data.item_genres[idx].tocsr())


def describe(data: InteractionData) -> dict[str, int]:
    sizes: dict[int, int] = {}
    for g in data.groups:
        sizes[len(g)] = sizes.get(len(g), 0) + 1
    tagged = int((np.diff(data.item_genres.indptr) > 0).sum())
    return {"users": data.n_users, "artists": data.n_items, "pairs": len(data.events),
            "tags": len(data.genre_names), "tagged_artists": tagged,
            **{f"groups_of_{k}": v for k, v in sorted(sizes.items())}}


__all__ = ["LastfmError", "load_lastfm", "friend_cliques", "sample_groups", "snowball_users",
           "subset_items", "describe"]
