"""Requests as clients send them, and what a server recorded of them."""
from __future__ import annotations

from pathlib import Path


def feedback_token(response, user_id: int) -> str:
    """The member's token from a predict answer's X-Feedback-Tokens header (USER=TOKEN,...)."""
    for item in response.headers["X-Feedback-Tokens"].split(","):
        user, _, token = item.partition("=")
        if int(user) == user_id:
            return token
    raise KeyError(user_id)


SMALL_WORLD_USERS = range(101, 289)
PREDICT_PATHS = ("/predict", "/predict/base", "/predict/advanced")


def random_predict(session, url: str, rng, *, max_members: int = 8,
                   lengths: tuple[int, ...] = (5, 10, 20),
                   paths: tuple[str, ...] = PREDICT_PATHS):
    """POST a random group of the small world's users to one of ``paths`` (load tests)."""
    group = rng.sample(SMALL_WORLD_USERS, rng.randint(1, max_members))
    return session.post(url + rng.choice(paths), timeout=30, json={
        "user_id": group[0], "other_users": group[1:], "playlist_length": rng.choice(lengths)})


def prediction_rows(db_path: Path, columns: str = "id") -> list[tuple]:
    """The predictions table of a SQLite copy a server writes to."""
    import sqlite3

    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute(f"SELECT {columns} FROM predictions").fetchall()


def client_headers(app, name: str = "test-backend") -> dict[str, str]:
    """The Authorization header of a new API client of ``app``: its playlists are evidence."""
    from app.api import clients

    with app.app_context():
        return {"Authorization": f"Bearer {clients.create_client(name)[1]}"}


def trust(app, client, name: str = "test-backend"):
    """``client`` (a Flask test client) sends a new API client's key on every request."""
    client.environ_base["HTTP_AUTHORIZATION"] = client_headers(app, name)["Authorization"]
    return client
