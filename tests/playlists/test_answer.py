"""The /predict answer joined from per-track fragments is byte for byte the JSON the plain
``json.dumps`` of the items gives."""
from __future__ import annotations

import json

import numpy as np

from app.recommender.catalogue import Catalogue
from app.recommender.dataset import ItemMeta


def _catalogue(names, artists, ids) -> Catalogue:
    n = len(ids)
    meta = ItemMeta(artist=np.arange(n, dtype=np.int32) % len(artists),
                    artist_ids=np.array([f"a{i}" for i in range(len(artists))]),
                    artist_names=np.array(artists), song=np.arange(n, dtype=np.int32),
                    explicit=np.zeros(n, bool), popularity=np.zeros(n, np.float32),
                    year=np.zeros(n, np.int16), audio=np.zeros((n, 0), np.float32))
    import scipy.sparse as sp
    return Catalogue(item_ids=np.array(ids), meta=meta, item_genres=sp.csr_matrix((n, 1)),
                     genre_names=np.array(["pop"]),
                     names=None if names is None else np.array(names, dtype=object))


def _plain(cat: Catalogue, idx) -> bytes:
    names = cat.names if cat.names is not None else [""] * len(cat.item_ids)
    return json.dumps([{"id": str(cat.item_ids[i]), "name": str(names[i]),
                        "artist": str(cat.meta.artist_names[cat.meta.artist[i]])}
                       for i in idx], ensure_ascii=False).encode()


def test_fragments_join_to_the_plain_json():
    names = ['Zażółć "gęślą" jaźń', "back\\slash", "tab\tand\nnewline", "emoji 🎶", "",
             "\u2028line sep", "\x00nul", "plain"]
    artists = ["Chopin", "Łona & Webber", "</script>", "日本"]
    ids = [f"t{i}" for i in range(len(names))]
    cat = _catalogue(names, artists, ids)
    rng = np.random.default_rng(0)
    for k in (0, 1, 3, 8):
        idx = rng.permutation(len(ids))[:k].tolist()
        assert cat.answer_json(idx) == _plain(cat, idx)
    assert cat.answer_json([2, 2]) == _plain(cat, [2, 2])


def test_fragments_without_names():
    cat = _catalogue(None, ["x"], ["1", "2", "3"])
    assert cat.answer_json([2, 0]) == _plain(cat, [2, 0])


def test_the_served_answer_is_the_items_as_json(api_client):
    body = {"user_id": 123, "other_users": [124, 125], "playlist_length": 20}
    for path in ("/predict", "/predict/base", "/predict/advanced"):
        got = api_client.post(path, json=body)
        assert got.status_code == 200
        items = got.get_json()
        assert len(items) == 20 and all(set(i) == {"id", "name", "artist"} for i in items)
        assert got.data == json.dumps(items, ensure_ascii=False).encode()


def test_track_details_are_the_catalogues_own_after_a_reload():
    """The details kept per catalogue are those of the catalogue asked about: a reloaded
    catalogue with other names at the same positions shows its own, and a track asked for
    again is the one its catalogue holds."""
    import gc

    from app.playlists.build import _tracks

    old = _catalogue(["old 0", "old 1", "old 2"], ["A", "B"], ["t0", "t1", "t2"])
    assert [t.name for t in _tracks(old, [2, 0])] == ["old 2", "old 0"]
    new = _catalogue(["new 0", "new 1", "new 2"], ["C"], ["u0", "u1", "u2"])
    got = _tracks(new, [0, 2, 1, 0])
    assert [(t.track_id, t.name, t.artist) for t in got] == [
        ("u0", "new 0", "C"), ("u2", "new 2", "C"), ("u1", "new 1", "C"), ("u0", "new 0", "C")]
    del old, new
    gc.collect()
    again = _catalogue(["again 0", "again 1", "again 2"], ["D"], ["v0", "v1", "v2"])
    assert [t.name for t in _tracks(again, [1])] == ["again 1"]
