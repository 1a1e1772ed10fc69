"""Read-only queries behind the public pages: user search, taste summaries, listening history.

Each function is one or two aggregate SQL statements, so a page costs the same whether a user has
ten events or ten thousand.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, case, cast, distinct, func, or_, select

from app.common.cache import cached
from app.common.text import ascii_int
from app.db import Artist, Genre, ListeningEvent, Track, User, artist_genres
from app.db.lookups import existing_users
from app.extensions import db

SEARCH_PAGE_SIZE = 10
# Events that say a person enjoyed a track; skips and adverts do not describe taste.
LISTENED = ("play", "like")


@dataclass(frozen=True)
class UserHit:
    user_id: int
    name: str
    city: str
    favourite_genres: list[str]


@dataclass(frozen=True)
class SearchPage:
    query: str
    page: int
    pages: int
    total: int
    hits: list[UserHit]

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


@dataclass(frozen=True)
class Count:
    label: str
    count: int


@dataclass(frozen=True)
class RecentEvent:
    timestamp: datetime
    session_id: int
    event_type: str
    track_id: str | None
    track: str | None
    artist: str | None


@dataclass(frozen=True)
class HistorySummary:
    events: int
    sessions: int
    plays: int
    skips: int
    likes: int
    adverts: int
    first: datetime | None
    last: datetime | None
    top_artists: list[Count]
    top_genres: list[Count]
    recent: list[RecentEvent]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_users(query: str, page: int = 1, per_page: int = SEARCH_PAGE_SIZE, *,
                 by_city: bool = True) -> SearchPage:
    """Match an id or the start of one ("12" finds 12, 120, 1234), or a substring of name or
    (``by_city``) city, case-insensitive; an exact id comes first. Without ``by_city`` a
    search cannot tell who lives where."""
    query = query.strip()[:100]
    if not query:
        return SearchPage(query, 1, 0, 0, [])
    # ILIKE is case-insensitive for every letter on PostgreSQL but only for ASCII on SQLite;
    # trying the usual casings as well finds "Łódź" from "łódź" there too.
    variants = dict.fromkeys([query, query.lower(), query.capitalize(), query.title(),
                              query.upper()])
    conditions = [column.ilike(_like_pattern(v), escape="\\")
                  for v in variants for column in ((User.name, User.city) if by_city
                                                   else (User.name,))]
    exact_id = ascii_int(query, 9)
    if exact_id is not None:
        conditions.append(User.user_id == exact_id)
        conditions.append(cast(User.user_id, String).like(f"{exact_id}%"))
    where = or_(*conditions)
    total = db.session.scalar(select(func.count()).select_from(User).where(where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    first = case((User.user_id == exact_id, 0), else_=1) if exact_id is not None else None
    order = ([first] if first is not None else []) + [User.name, User.user_id]
    users = db.session.scalars(
        select(User).where(where).order_by(*order).limit(per_page).offset((page - 1) * per_page)
    ).all()
    hits = [UserHit(u.user_id, u.name, u.city, sorted(g.name for g in u.favourite_genres))
            for u in users]
    return SearchPage(query, page, pages, total, hits)


@dataclass(frozen=True)
class MemberGenres:
    """Two different things a page must not mix up: the genres a person listens to most, and
    the favourites they declared (which the recommender falls back on without history)."""
    listened: list[str]
    declared: list[str]


def top_genres(user_ids: list[int], limit: int = 3) -> dict[int, MemberGenres]:
    """Each user's most-listened genres in one grouped query, with their declared favourites."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(ListeningEvent.user_id, Genre.name, func.count().label("n"))
        .join(Track, Track.id == ListeningEvent.track_id)
        .join(artist_genres, artist_genres.c.artist_id == Track.artist_id)
        .join(Genre, Genre.id == artist_genres.c.genre_id)
        .where(ListeningEvent.user_id.in_(user_ids), ListeningEvent.event_type.in_(LISTENED))
        .group_by(ListeningEvent.user_id, Genre.name)
    ).all()
    per_user: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for uid, genre, n in rows:
        per_user[uid].append((-n, genre))
    users = existing_users(user_ids)
    return {uid: MemberGenres(
                listened=[g for _, g in sorted(per_user.get(uid, []))[:limit]],
                declared=(sorted(g.name for g in users[uid].favourite_genres)
                          if uid in users else []))
            for uid in user_ids}


def history_summary(user_id: int, top: int = 10, recent: int = 15) -> HistorySummary:
    e = ListeningEvent
    totals = db.session.execute(
        select(
            func.count(),
            func.count(distinct(e.session_id)),
            func.sum(case((e.event_type == "play", 1), else_=0)),
            func.sum(case((e.event_type == "skip", 1), else_=0)),
            func.sum(case((e.event_type == "like", 1), else_=0)),
            func.sum(case((e.event_type == "advertisement", 1), else_=0)),
            func.min(e.timestamp),
            func.max(e.timestamp),
        ).where(e.user_id == user_id)
    ).one()
    artists = db.session.execute(
        select(Artist.name, func.count().label("n"))
        .select_from(e).join(Track, Track.id == e.track_id).join(Artist, Artist.id == Track.artist_id)
        .where(e.user_id == user_id, e.event_type.in_(LISTENED))
        .group_by(Artist.id, Artist.name).order_by(func.count().desc(), Artist.name).limit(top)
    ).all()
    genres = db.session.execute(
        select(Genre.name, func.count().label("n"))
        .select_from(e).join(Track, Track.id == e.track_id)
        .join(artist_genres, artist_genres.c.artist_id == Track.artist_id)
        .join(Genre, Genre.id == artist_genres.c.genre_id)
        .where(e.user_id == user_id, e.event_type.in_(LISTENED))
        .group_by(Genre.name).order_by(func.count().desc(), Genre.name).limit(top)
    ).all()
    recent_rows = db.session.execute(
        select(e.timestamp, e.session_id, e.event_type, e.track_id, Track.name, Artist.name)
        .select_from(e).outerjoin(Track, Track.id == e.track_id)
        .outerjoin(Artist, Artist.id == Track.artist_id)
        .where(e.user_id == user_id, e.event_type != "advertisement")  # adverts say nothing
        .order_by(e.timestamp.desc(), e.id.desc()).limit(recent)
    ).all()
    return HistorySummary(
        events=totals[0] or 0, sessions=totals[1] or 0, plays=totals[2] or 0,
        skips=totals[3] or 0, likes=totals[4] or 0, adverts=totals[5] or 0,
        first=totals[6], last=totals[7],
        top_artists=[Count(name, n) for name, n in artists],
        top_genres=[Count(name, n) for name, n in genres],
        recent=[RecentEvent(*row) for row in recent_rows],
    )


def catalogue_counts_cached() -> dict[str, int]:
    """Counting millions of events costs a full scan: the builder shows a minute-old figure."""
    from app.db.lookups import catalogue_counts

    return cached("catalogue_counts", 60.0, catalogue_counts)
