"""The party service: the one path by which the API and the pages change a party.

Every change runs under the party's row lock (``_lock``: one UPDATE that bumps the version, so
SQLite takes its write lock and PostgreSQL the row's), reads the party's state, changes it,
re-plans the upcoming part of the queue when the room or its taste changed, keeps an event row
for what happened and commits once. The queue's ETag is the version: a poll before the party's
next change by itself (``due_at``: a track ends, a silent guest times out) reads one row.

Re-plans never touch what was played or is playing, nor tracks the host moved (pinned); the
planner is ``app.recommender.party_planner``. Each re-plan is one predictions-log line.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta

import numpy as np
from flask import current_app
from sqlalchemy import select, update

from app.common.clock import utcnow
from app.db import Genre, Party, PartyEvent, PartyGuest, PartyTrack, User
from app.extensions import db
from app.playlists.errors import LogUnavailable, ModelUnavailable, UnknownUsers
from app.playlists.histories import user_genres
from app.playlists.holder import get_holder
from app.playlists.log import PredictionLogError, append_record
from app.recommender import party_planner as planner
from app.recommender.members import Member
from app.recommender.strategies import check_strategy

log = logging.getLogger(__name__)

DEFAULT_DURATION_MS = 180_000


class PartyError(Exception):
    """A request the party cannot take; ``status`` and ``code`` are the API's answer."""

    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


# ----- reading -----

def get_party(party_id: str) -> Party:
    party = db.session.get(Party, party_id) if isinstance(party_id, str) and \
        len(party_id) <= 32 else None
    if party is None:
        raise PartyError(404, "unknown_party", "no such party")
    if party.ended_at is not None:
        raise PartyError(410, "party_ended", "this party has ended")
    return party


def guests_of(party_id: str) -> list[PartyGuest]:
    return list(db.session.scalars(select(PartyGuest).where(PartyGuest.party_id == party_id)
                                   .order_by(PartyGuest.id)))


def tracks_of(party_id: str) -> list[PartyTrack]:
    return list(db.session.scalars(select(PartyTrack).where(PartyTrack.party_id == party_id)
                                   .order_by(PartyTrack.position)))


def queue(party: Party) -> dict:
    """The public queue: now playing, upcoming, played, and who is here."""
    cat = _catalogue()
    rows = tracks_of(party.id)
    guests = [g for g in guests_of(party.id) if g.left_at is None]
    idx = cat.ids.to_internal([r.track_id for r in rows]) if rows else np.zeros(0, np.int64)

    def track(row: PartyTrack, i: int) -> dict:
        name = str(cat.names[i]) if i >= 0 and cat.names is not None else ""
        artist = cat.artist_name(i) if i >= 0 else ""
        return {"id": row.track_id, "name": name, "artist": artist,
                "for": list(row.for_guests or [])}

    out = {"now_playing": None, "upcoming": [], "played": [],
           "guests": [{"guest_id": g.id, "user_id": g.user_id, "name": g.name}
                      for g in guests]}
    for row, i in zip(rows, idx.tolist()):
        if row.state == "playing":
            out["now_playing"] = track(row, i)
        elif row.state in ("upcoming", "played"):
            out[row.state].append(track(row, i))
    return out


def etag(party: Party) -> str:
    """The queue's entity tag (unquoted): party and version."""
    return f"{party.id}.{party.version}"


# ----- creating and joining -----

def create(host_user_id: int, members: list[int], strategy: str | None) -> tuple[Party, str]:
    """A new party for the host and their chosen group, its queue planned and playing."""
    from app.party import tokens

    strategy = check_strategy(strategy, current_app.config.get("DEFAULT_STRATEGY"))
    users = list(dict.fromkeys([host_user_id, *members]))
    names = dict(db.session.execute(select(User.user_id, User.name)
                                    .where(User.user_id.in_(users))).all())
    unknown = [u for u in users if u not in names]
    if unknown:
        raise UnknownUsers(unknown)
    _recommender()  # no model: nothing to plan with (503 before anything is stored)
    now = utcnow()
    party = Party(id=secrets.token_urlsafe(12), join_code=secrets.token_urlsafe(24),
                  host_user_id=host_user_id, strategy=strategy, guests_control=False,
                  version=0, created_at=now)
    db.session.add(party)
    db.session.flush()
    _event(party, "create", detail={"members": users, "strategy": strategy})
    for u in users:
        guest = PartyGuest(party_id=party.id, user_id=u, name=names[u] or f"User {u}",
                           via="host", joined_at=now, last_seen_at=now)
        db.session.add(guest)
        db.session.flush()
        _event(party, "join", guest.id, detail={"user_id": u, "via": "host"})
    db.session.flush()
    _replan(party, "start", now)
    _start_next(party, now)
    _commit()
    return party, tokens.host_token(party.id)


def check_code(party: Party, join_code: str) -> None:
    if not hmac.compare_digest(party.join_code.encode(), str(join_code).encode("utf-8",
                                                                              "replace")):
        raise PartyError(404, "unknown_party", "no party with this id and join code")


def join(party_id: str, join_code: str, user_id: int | None, genres: list[str] | None,
         name: str | None) -> tuple[PartyGuest, str]:
    from app.party import tokens

    party = get_party(party_id)
    check_code(party, join_code)
    party = _lock(party.id)
    now = utcnow()
    guests = guests_of(party.id)
    here = [g for g in guests if g.left_at is None]
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None:
            raise UnknownUsers([user_id])
        mine = next((g for g in here if g.user_id == user_id), None)
        if mine is not None and mine.via == "phone":
            raise PartyError(409, "already_joined", "this user is already in the party on "
                                                     "another phone; leave there first")
        if mine is not None:  # a member the host brought picks up their phone
            mine.via, mine.last_seen_at = "phone", now
            _event(party, "join", mine.id, detail={"user_id": user_id, "took_over": True})
            _settle(party, now)
            _commit()
            return mine, tokens.guest_token(party.id, mine.id)
        guest = PartyGuest(party_id=party.id, user_id=user_id, name=user.name or f"User {user_id}",
                           via="phone", joined_at=now, last_seen_at=now)
    else:
        known = set(db.session.scalars(select(Genre.name).where(Genre.name.in_(genres or []))))
        unknown = [g for g in genres or [] if g not in known]
        if unknown or not genres:
            raise PartyError(422, "validation_error", "pick one or more known genres",
                             [{"field": "genres", "reason": f"unknown genres: {unknown}"
                               if unknown else "at least one genre"}])
        guest = PartyGuest(party_id=party.id, user_id=None, genres=list(dict.fromkeys(genres)),
                           name=(name or "").strip()[:60] or f"Guest {len(guests) + 1}",
                           via="phone", joined_at=now, last_seen_at=now)
    limit = int(current_app.config["PARTY_MAX_GUESTS"])
    if len(here) >= limit:
        raise PartyError(409, "party_full", f"a party has at most {limit} guests")
    db.session.add(guest)
    db.session.flush()
    _event(party, "join", guest.id, detail={"user_id": user_id, "genres": guest.genres})
    _replan(party, "join", now)
    _settle(party, now)
    _commit()
    return guest, tokens.guest_token(party.id, guest.id)


# ----- changes -----

def leave(party_id: str, guest_id: int) -> Party:
    party = _lock(party_id)
    guest = _present_guest(party, guest_id)
    now = utcnow()
    guest.left_at = now
    _event(party, "leave", guest.id)
    _replan(party, "leave", now)
    _settle(party, now)
    _commit()
    return party


def feedback(party_id: str, guest_id: int, track_id: str, kind: str, by_host: bool) -> Party:
    """A guest's skip or like of a party track, or the player's report that a track plays."""
    party = _lock(party_id)
    now = utcnow()
    guest = _present_guest(party, guest_id)
    rows = tracks_of(party.id)
    row = next((r for r in rows if r.track_id == track_id and r.state != "removed"), None)
    if row is None:
        raise PartyError(422, "validation_error", "the track is not in this party's queue",
                         [{"field": "track_id", "reason": "not in the party"}])
    if kind == "play":
        if not by_host:
            raise PartyError(403, "forbidden", "only the host's player reports plays")
        if row.state == "upcoming":
            _finish_playing(party, rows, now)
            row.state, row.started_at, row.pinned = "playing", now, False
            row.present = [g.id for g in _here(party.id)]
        _event(party, "play", guest.id, track_id)
    else:
        done = db.session.scalar(select(PartyEvent.id).where(
            PartyEvent.party_id == party.id, PartyEvent.guest_id == guest.id,
            PartyEvent.track_id == track_id, PartyEvent.kind.in_(("skip", "like"))))
        if done is not None:  # a repeat (or a change of mind) changes nothing
            db.session.rollback()
            return get_party(party_id)
        _event(party, kind, guest.id, track_id)
        db.session.flush()
        if kind == "skip" and row.state == "playing":
            here = {g.id for g in _here(party.id)}
            skippers = set(db.session.scalars(select(PartyEvent.guest_id).where(
                PartyEvent.party_id == party.id, PartyEvent.track_id == track_id,
                PartyEvent.kind == "skip")))
            if by_host or 2 * len(skippers & here) > len(here):  # most of the room: move on
                _finish_playing(party, rows, now)
                _event(party, "next", guest.id, track_id, {"by": "skips"})
        if kind == "skip" and row.state == "upcoming":
            row.state = "removed"  # skipped before it played: it does not play
        _replan(party, kind, now)
    _settle(party, now)
    _commit()
    return party


def next_track(party_id: str) -> Party:
    party = _lock(party_id)
    now = utcnow()
    _finish_playing(party, tracks_of(party.id), now)
    _event(party, "next")
    _settle(party, now)
    _commit()
    return party


def remove_track(party_id: str, track_id: str) -> Party:
    party = _lock(party_id)
    row = _upcoming(party, track_id)
    row.state = "removed"
    _event(party, "remove", track_id=track_id)
    _settle(party, utcnow())
    _commit()
    return party


def move_up(party_id: str, track_id: str) -> Party:
    party = _lock(party_id)
    row = _upcoming(party, track_id)
    upcoming = [r for r in tracks_of(party.id) if r.state == "upcoming"]
    at = upcoming.index(row)
    if at > 0:
        before = upcoming[at - 1]
        before.position, row.position = row.position, before.position
        # everything up to the moved track stays where the host put it
        for r in upcoming[:at + 1]:
            r.pinned = True
    _event(party, "move_up", track_id=track_id)
    _commit()
    return party


def set_controls(party_id: str, on: bool) -> Party:
    party = _lock(party_id)
    party.guests_control = bool(on)
    _event(party, "controls", detail={"guests_control": bool(on)})
    _commit()
    return party


def end(party_id: str) -> None:
    party = _lock(party_id)
    now = utcnow()
    party.ended_at = now
    for g in _here(party.id):
        g.left_at = now
    _event(party, "end")
    _commit()


def seen(party: Party, guest_id: int) -> None:
    """A guest's poll: they are still here (written at most every ``PARTY_SEEN_EVERY``)."""
    guest = db.session.get(PartyGuest, guest_id)
    if guest is None or guest.party_id != party.id or guest.left_at is not None:
        return
    now = utcnow()
    every = timedelta(seconds=int(current_app.config["PARTY_SEEN_EVERY_SECONDS"]))
    if now - guest.last_seen_at >= every:
        # a fresh transaction for the write: SQLite refuses to turn a read snapshot that
        # another worker has written past into a write
        guest_id = guest.id
        db.session.rollback()
        db.session.execute(update(PartyGuest).where(PartyGuest.id == guest_id)
                           .values(last_seen_at=now))
        _commit()


def refresh(party: Party) -> Party:
    """Apply what happened by itself since the last change (tracks ended, guests silent)."""
    now = utcnow()
    if party.due_at is None or now < party.due_at:
        return party
    party = _lock(party.id)
    _timeouts(party, now)
    _settle(party, now)
    _commit()
    return party


# ----- inside a locked change -----

def _lock(party_id: str) -> Party:
    db.session.rollback()
    result = db.session.execute(update(Party).where(Party.id == party_id,
                                                    Party.ended_at.is_(None))
                                .values(version=Party.version + 1))
    if result.rowcount != 1:
        db.session.rollback()
        get_party(party_id)  # 404 or 410
        raise PartyError(409, "conflict", "the party changed; retry")
    party = db.session.get(Party, party_id, populate_existing=True)
    return party


def _here(party_id: str) -> list[PartyGuest]:
    return [g for g in guests_of(party_id) if g.left_at is None]


def _present_guest(party: Party, guest_id: int) -> PartyGuest:
    guest = db.session.get(PartyGuest, guest_id)
    if guest is None or guest.party_id != party.id:
        raise PartyError(404, "unknown_guest", "no such guest in this party")
    if guest.left_at is not None:
        raise PartyError(403, "guest_left", "this guest has left the party; join again")
    return guest


def _upcoming(party: Party, track_id: str) -> PartyTrack:
    row = db.session.scalar(select(PartyTrack).where(PartyTrack.party_id == party.id,
                                                     PartyTrack.track_id == track_id,
                                                     PartyTrack.state == "upcoming"))
    if row is None:
        raise PartyError(422, "validation_error", "the track is not upcoming in this party",
                         [{"field": "track_id", "reason": "not upcoming"}])
    return row


def _event(party: Party, kind: str, guest_id: int | None = None, track_id: str | None = None,
           detail: dict | None = None) -> None:
    db.session.add(PartyEvent(party_id=party.id, kind=kind, guest_id=guest_id,
                              track_id=track_id, detail=detail, created_at=utcnow()))


def _duration(track_id: str) -> timedelta:
    cat = _catalogue()
    i = cat.ids.position(track_id)
    ms = int(cat.durations[i]) if i is not None and cat.durations is not None else 0
    return timedelta(milliseconds=ms if ms > 0 else DEFAULT_DURATION_MS)


def _finish_playing(party: Party, rows: list[PartyTrack], now: datetime) -> None:
    for r in rows:
        if r.state == "playing":
            r.state = "played"


def _start_next(party: Party, now: datetime, start: datetime | None = None) -> PartyTrack | None:
    nxt = db.session.scalar(select(PartyTrack).where(PartyTrack.party_id == party.id,
                                                     PartyTrack.state == "upcoming")
                            .order_by(PartyTrack.position).limit(1))
    if nxt is not None:
        nxt.state, nxt.started_at, nxt.pinned = "playing", start or now, False
        nxt.present = [g.id for g in _here(party.id)]
    return nxt


def _settle(party: Party, now: datetime) -> None:
    """Advance the clock, keep a track playing, keep the queue full; then the next due time."""
    db.session.flush()
    rows = tracks_of(party.id)
    playing = next((r for r in rows if r.state == "playing"), None)
    # the clock: tracks whose duration has passed are played, the next ones started
    while playing is not None and playing.started_at + _duration(playing.track_id) <= now:
        end_at = playing.started_at + _duration(playing.track_id)
        playing.state = "played"
        db.session.flush()
        playing = _start_next(party, now, end_at)
        db.session.flush()
    if playing is None:
        playing = _start_next(party, now)
    db.session.flush()
    upcoming = db.session.scalar(select(db.func.count()).select_from(PartyTrack).where(
        PartyTrack.party_id == party.id, PartyTrack.state == "upcoming"))
    if upcoming < int(current_app.config["PARTY_REPLAN_BELOW"]) and _here(party.id):
        _replan(party, "queue_low", now)
        if playing is None:
            _start_next(party, now)
    db.session.flush()
    playing = db.session.scalar(select(PartyTrack).where(PartyTrack.party_id == party.id,
                                                         PartyTrack.state == "playing"))
    due = [playing.started_at + _duration(playing.track_id)] if playing is not None else []
    timeout = timedelta(seconds=int(current_app.config["PARTY_GUEST_TIMEOUT_SECONDS"]))
    phones = [g.last_seen_at + timeout for g in _here(party.id) if g.via == "phone"]
    party.due_at = min(due + phones) if due or phones else None


def _timeouts(party: Party, now: datetime) -> None:
    """Silent guests leave at the moment their silence ran out: the clock is first advanced
    to that moment, so the tracks that played before it were the queue of that time."""
    timeout = timedelta(seconds=int(current_app.config["PARTY_GUEST_TIMEOUT_SECONDS"]))
    gone = sorted((g for g in _here(party.id) if g.via == "phone"
                   and g.last_seen_at + timeout <= now), key=lambda g: g.last_seen_at)
    for g in gone:
        at = g.last_seen_at + timeout
        _settle(party, at)
        g.left_at = at
        _event(party, "timeout", g.id)
        db.session.flush()
        _replan(party, "timeout", at)


def _replan(party: Party, reason: str, now: datetime) -> None:
    """Plan the upcoming part again (everything upcoming but what the host pinned)."""
    started = time.perf_counter()
    rec = _recommender()
    cat = rec.catalogue
    db.session.flush()
    rows = tracks_of(party.id)
    guests = guests_of(party.id)
    fixed_rows = [r for r in rows if r.state in ("played", "playing")] + \
        [r for r in rows if r.state == "upcoming" and r.pinned]
    for r in rows:
        if r.state == "upcoming" and not r.pinned:
            db.session.delete(r)
    here_ids = [g.id for g in guests if g.left_at is None]
    idx_of = dict(zip([r.track_id for r in rows],
                      cat.ids.to_internal([r.track_id for r in rows]).tolist()))
    fixed = [planner.Played(idx_of[r.track_id], r.turn_of,
                            tuple(r.present if r.present is not None else here_ids))
             for r in fixed_rows if idx_of[r.track_id] >= 0]
    excluded = [idx_of[r.track_id] for r in rows if r.state == "removed"
                and idx_of[r.track_id] >= 0]
    feedback = _feedback(party.id, cat)
    plan_guests = _plan_guests(rec, guests, {g.id for g in guests if g.left_at is None},
                               feedback)
    ahead = int(current_app.config["PARTY_QUEUE_AHEAD"])
    pinned = sum(1 for r in fixed_rows if r.state == "upcoming")
    count = max(0, ahead - pinned)
    max_per_artist = int(current_app.config["MAX_TRACKS_PER_ARTIST"])
    result = planner.plan(rec, plan_guests, fixed, count, excluded=excluded,
                          max_per_artist=max_per_artist)
    last = max((r.position for r in rows), default=-1)
    ids = cat.item_ids[np.asarray(result.indices, np.int64)].astype(str).tolist() \
        if result.indices else []
    for k, (tid, turn, fors) in enumerate(zip(ids, result.turns, result.for_guests)):
        db.session.add(PartyTrack(party_id=party.id, position=last + 1 + k, track_id=tid,
                                  state="upcoming", turn_of=turn, for_guests=list(fors),
                                  present=None, pinned=False))
    elapsed = time.perf_counter() - started
    # everything the plan was made from, so that the party can be replayed (``replay``)
    _event(party, "replan", detail={
        "reason": reason, "tracks": ids, "guests": here_ids, "turns": result.turns,
        "fixed": [[r.track_id, r.turn_of, list(r.present if r.present is not None
                                                else here_ids)] for r in fixed_rows],
        "excluded": [r.track_id for r in rows if r.state == "removed"], "count": count,
        "max_per_artist": max_per_artist, "model_version": rec.version})
    # the log's original fields too (user_id: the host; other_users: the other listeners
    # present; playlist: the planned tracks), so every reader of the log can read these lines
    listeners = [g.user_id for g in guests if g.left_at is None and g.user_id is not None
                 and g.user_id != party.host_user_id]
    line = {"user_id": party.host_user_id, "other_users": listeners, "playlist": ids,
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f"), "elapsed_time": elapsed,
            "model": "party", "is_ab": False, "prediction_id": uuid.uuid4().hex,
            "model_version": rec.version, "endpoint": "/parties",
            "party_id": party.id, "reason": reason, "queue": ids,
            "fixed": [r.track_id for r in fixed_rows], "guests": here_ids,
            "turns": result.turns, "for": result.for_guests}
    try:
        append_record(current_app.config["PREDICTIONS_LOG"], line)
    except PredictionLogError as exc:
        db.session.rollback()
        log.error("%s", exc)
        raise LogUnavailable("the party's new queue could not be recorded; retry shortly") \
            from None


def _plan_guests(rec, guests: list[PartyGuest], here: set[int],
                 feedback: dict[int, tuple[list[int], list[int]]]) -> list[planner.PartyGuest]:
    genres = user_genres([g.user_id for g in guests if g.user_id is not None
                          and not rec.is_warm(g.user_id)])
    out = []
    for g in guests:
        if g.user_id is not None:
            member = rec.member(g.user_id, genres.get(g.user_id))
        else:
            row = rec.row_from_genres(g.genres or [])
            member = Member(-1, row, "genres") if row is not None else \
                Member(-1, rec.popular_row, "popular")
        liked, skipped = feedback.get(g.id, ([], []))
        out.append(planner.PartyGuest(g.id, member, g.id in here, liked, skipped))
    return out


def replay(party_id: str) -> list[dict]:
    """Every re-plan of a party made again from its events: who was present and what they
    had skipped and liked at that moment, and the tracks fixed then. Under the model version
    that planned it, each replayed plan equals the stored one."""
    rec = _recommender()
    cat = rec.catalogue
    if db.session.get(Party, party_id) is None:
        raise PartyError(404, "unknown_party", "no such party")
    guests = guests_of(party_id)
    events = list(db.session.scalars(select(PartyEvent).where(PartyEvent.party_id == party_id)
                                     .order_by(PartyEvent.id)))
    here: set[int] = set()
    feedback: dict[int, tuple[list[int], list[int]]] = {}
    out = []
    for e in events:
        if e.kind == "join":
            here.add(e.guest_id)
        elif e.kind in ("leave", "timeout"):
            here.discard(e.guest_id)
        elif e.kind == "end":
            here.clear()
        elif e.kind in ("skip", "like") and e.track_id is not None:
            i = cat.ids.position(e.track_id)
            if i is not None:
                liked, skipped = feedback.setdefault(e.guest_id, ([], []))
                (liked if e.kind == "like" else skipped).append(i)
        elif e.kind == "replan":
            d = e.detail or {}
            fixed = [planner.Played(cat.ids.position(t), turn, tuple(present))
                     for t, turn, present in d.get("fixed", [])
                     if cat.ids.position(t) is not None]
            excluded = [cat.ids.position(t) for t in d.get("excluded", [])
                        if cat.ids.position(t) is not None]
            result = planner.plan(rec, _plan_guests(rec, guests, set(here), feedback), fixed,
                                  int(d.get("count", 0)), excluded=excluded,
                                  max_per_artist=int(d.get("max_per_artist", 3)))
            ids = cat.item_ids[np.asarray(result.indices, np.int64)].astype(str).tolist() \
                if result.indices else []
            out.append({"event_id": e.id, "reason": d.get("reason"), "stored": d.get("tracks"),
                        "replayed": ids, "same": ids == d.get("tracks"),
                        "model_version": d.get("model_version")})
    return out


def _feedback(party_id: str, cat) -> dict[int, tuple[list[int], list[int]]]:
    """Per guest, the catalogue indices they liked and skipped in this party."""
    rows = db.session.execute(select(PartyEvent.guest_id, PartyEvent.kind, PartyEvent.track_id)
                              .where(PartyEvent.party_id == party_id,
                                     PartyEvent.kind.in_(("skip", "like")))
                              .order_by(PartyEvent.id)).all()
    out: dict[int, tuple[list[int], list[int]]] = {}
    if not rows:
        return out
    idx = cat.ids.to_internal([r[2] for r in rows]).tolist()
    for (guest, kind, _), i in zip(rows, idx):
        if i < 0:
            continue
        liked, skipped = out.setdefault(guest, ([], []))
        (liked if kind == "like" else skipped).append(i)
    return out


def _recommender():
    state = get_holder().current()
    advanced = state.advanced()
    if advanced is None:
        raise ModelUnavailable(state.error or "no trained model version is loaded")
    return advanced.recommender


def _catalogue():
    return _recommender().catalogue


def _commit() -> None:
    db.session.commit()
