"""The parties' JSON API: create, join, leave, the queue (ETag / 304), events, next, end.

Who may do what is decided here from the signed token (``Authorization: Bearer``, or the
page's HttpOnly cookie together with the ``X-Requested-With`` header a cross-site form cannot
send): the host's token for host actions, a guest's for that guest's own actions only.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request

from app.api.openapi import Answer, Header, document
from app.api.schemas import parse_body
from app.errors import ApiError
from app.extensions import limiter
from app.party import service, tokens
from app.party.schemas import (ETAG, PARTY_TOKEN, QUEUE_CHANGED, QUEUE_HEADERS, CreateParty,
                               GuestId, GuestJoined, JoinParty, PartyCreated, PartyEventBody,
                               PartyId, PartyQueue, TrackId, Controls, errors)
from app.party.service import PartyError
from app.playlists.errors import LogUnavailable, ModelUnavailable, UnknownUsers

bp = Blueprint("party_api", __name__)

COOKIE_PREFIX = "pz_party_"
CSRF_HEADER = "X-Requested-With"

_create_limit = limiter.limit(lambda: current_app.config["PARTY_CREATE_RATE_LIMIT"])
# only failed joins count (a wrong code or party): guessing is what the limit is for, and a
# party's phones often share the venue's address
_join_limit = limiter.shared_limit(lambda: current_app.config["PARTY_JOIN_RATE_LIMIT"],
                                   scope="party_join",
                            deduct_when=lambda response: response.status_code == 404)
_party_limit = limiter.shared_limit(lambda: current_app.config["PARTY_RATE_LIMIT"],
                                    scope="party")
_poll_limit = limiter.limit(lambda: current_app.config["PARTY_POLL_RATE_LIMIT"])

# ----- answers -----

def _json(status: int, payload) -> Response:
    response = Response(json.dumps(payload, ensure_ascii=False), status=status,
                        mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _queue_answer(party, status: int = 200) -> Response:
    response = _json(status, service.queue(party))
    response.set_etag(service.etag(party))
    response.headers["X-Party-Guests-Control"] = "1" if party.guests_control else "0"
    response.headers["Cache-Control"] = "no-cache, private"
    return response


@bp.errorhandler(PartyError)
def _party_error(exc: PartyError):
    from app.errors import error_response

    return error_response(exc.status, exc.code, exc.message, exc.details)


@bp.errorhandler(UnknownUsers)
@bp.errorhandler(ModelUnavailable)
@bp.errorhandler(LogUnavailable)
def _service_error(exc: Exception) -> Response:
    """The service's refusals, for every party call, in the API's error contract."""
    from app.errors import error_response

    if isinstance(exc, UnknownUsers):
        return error_response(404, "unknown_users", exc.message,
                              {"unknown_user_ids": exc.ids})
    if isinstance(exc, ModelUnavailable):
        return error_response(503, "model_unavailable", f"no trained model to plan with "
                              f"({exc.message})", None, {"Retry-After": "60"})
    return error_response(503, "log_unavailable", exc.message, None, {"Retry-After": "5"})


# ----- who is asking -----

def actor(party_id: str, *, required: bool = True) -> tokens.Actor | None:
    """The verified token of this party's host or guest; 401 without one, 403 for a token of
    another party or one that does not verify."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not token:
        token = request.cookies.get(COOKIE_PREFIX + party_id, "")
        if token and request.method not in ("GET", "HEAD") and \
                request.headers.get(CSRF_HEADER) != "pozytywka":
            raise ApiError(403, "forbidden", f"a change made with the page's cookie needs the "
                           f"{CSRF_HEADER} header")
    if not token:
        if not required:
            return None
        raise ApiError(401, "unauthorized", "this needs the party's host or guest token "
                       "(Authorization: Bearer TOKEN)", None, {"WWW-Authenticate": "Bearer"})
    who = tokens.read(token)
    if who is None or who.party_id != party_id:
        raise ApiError(403, "invalid_party_token", "the token is not valid for this party")
    return who


def _host(party_id: str) -> tokens.Actor:
    who = actor(party_id)
    if not who.is_host:
        raise ApiError(403, "host_only", "this needs the host's token")
    return who


def _host_or_controls(party) -> tokens.Actor:
    who = actor(party.id)
    if not who.is_host and not party.guests_control:
        raise ApiError(403, "host_only", "the host has not given guests the controls")
    return who


# ----- routes -----

TAG = "parties"
# Every call on a party carries its host's or a guest's token.
ON_PARTY = dict(tag=TAG, security=(PARTY_TOKEN,))
QUEUE_ERRORS = (401, 403, 404, 409, 410, 429, 503, 500)


@bp.post("/parties")
@_create_limit
@document(summary="Start a party for the host and their group", tag=TAG,
          description="The queue is planned and starts playing at once. The join code makes "
                      "the join link; the host token authorises host actions.",
          body=CreateParty, example={"host_user_id": 123, "members": [124, 125]},
          answers={201: Answer("Created.", PartyCreated),
                   **errors(400, 404, 413, 415, 422, 429, 503, 500)})
def create_party() -> Response:
    body: CreateParty = parse_body()
    party, host_token = service.create(body.host_user_id, body.members, body.strategy)
    return _json(201, PartyCreated(party_id=party.id, join_code=party.join_code,
                                   host_token=host_token).model_dump())


@bp.post("/parties/<party_id>/guests")
@_join_limit
@document(summary="Join a party from a phone", tag=TAG,
          description="As a Pozytywka user (`user_id`) or as a new listener who picks "
                      "favourite genres (`genres`, optional `name`). Rate-limited per address "
                      "against join-code guessing.",
          body=JoinParty, answers={201: Answer("Joined.", GuestJoined),
                                   **errors(400, 404, 409, 410, 413, 415, 422, 429, 503, 500)})
def join_party(party_id: PartyId) -> Response:
    body: JoinParty = parse_body()
    guest, token = service.join(party_id, body.join_code, body.user_id, body.genres,
                                body.name)
    return _json(201, GuestJoined(guest_id=guest.id, guest_token=token).model_dump())


@bp.delete("/parties/<party_id>/guests/<int:guest_id>")
@_party_limit
@document(summary="Leave (the guest's token) or remove a guest (the host's)", **ON_PARTY,
          answers={200: QUEUE_CHANGED, **errors(*QUEUE_ERRORS)})
def leave_party(party_id: PartyId, guest_id: GuestId) -> Response:
    service.get_party(party_id)
    who = actor(party_id)
    if not who.is_host and who.guest_id != guest_id:
        raise ApiError(403, "not_yourself", "a guest can only remove themselves")
    party = service.leave(party_id, guest_id)
    return _queue_answer(party)


@bp.get("/parties/<party_id>/queue")
@_poll_limit
@document(summary="The queue: now playing, upcoming with whom each is for, played, guests",
          description="Poll with If-None-Match: 304 while nothing changed.", **ON_PARTY,
          request_headers={"If-None-Match": Header("The ETag of the queue last seen.",
                                                   required=False)},
          answers={200: Answer("The queue.", PartyQueue, QUEUE_HEADERS),
                   304: Answer("Unchanged since the ETag sent.", headers={"ETag": ETAG}),
                   **errors(*QUEUE_ERRORS)})
def get_queue(party_id: PartyId) -> Response:
    party = service.get_party(party_id)
    who = actor(party_id)
    if not who.is_host:
        service.seen(party, who.guest_id)
    party = service.refresh(party)
    if service.etag(party) in request.if_none_match:
        response = Response(status=304)
        response.set_etag(service.etag(party))
        response.headers["Cache-Control"] = "no-cache, private"
        return response
    return _queue_answer(party)


@bp.post("/parties/<party_id>/events")
@_party_limit
@document(summary="A guest's skip or like; the player's play", **ON_PARTY,
          description="A skip or like changes that guest's taste for the rest of the party "
                      "and re-plans the upcoming tracks. A skip of the playing track moves on "
                      "when most of the room (or the host) skipped it. `play` (host token: the "
                      "player) makes an upcoming track play.",
          body=PartyEventBody,
          answers={200: QUEUE_CHANGED,
                   **errors(400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 503, 500)})
def post_event(party_id: PartyId) -> Response:
    service.get_party(party_id)
    who = actor(party_id)
    body: PartyEventBody = parse_body()
    if not who.is_host and who.guest_id != body.guest_id:
        raise ApiError(403, "not_yourself", "a guest can only report for themselves")
    party = service.feedback(party_id, body.guest_id, body.track_id, body.event,
                             by_host=who.is_host)
    return _queue_answer(party)


@bp.post("/parties/<party_id>/next")
@_party_limit
@document(summary="Play the next track (host, or guests given the controls)", **ON_PARTY,
          answers={200: QUEUE_CHANGED, **errors(*QUEUE_ERRORS)})
def next_track(party_id: PartyId) -> Response:
    _host_or_controls(service.get_party(party_id))
    party = service.next_track(party_id)
    return _queue_answer(party)


@bp.delete("/parties/<party_id>/queue/<track_id>")
@_party_limit
@document(summary="Remove an upcoming track (host, or guests given the controls)", **ON_PARTY,
          answers={200: QUEUE_CHANGED, **errors(401, 403, 404, 409, 410, 422, 429, 503, 500)})
def remove_track(party_id: PartyId, track_id: TrackId) -> Response:
    _host_or_controls(service.get_party(party_id))
    party = service.remove_track(party_id, track_id)
    return _queue_answer(party)


@bp.post("/parties/<party_id>/queue/<track_id>/up")
@_party_limit
@document(summary="Move an upcoming track one place up (host, or guests given the controls); "
                  "it stays there through re-plans", **ON_PARTY,
          answers={200: QUEUE_CHANGED, **errors(401, 403, 404, 409, 410, 422, 429, 503, 500)})
def move_up(party_id: PartyId, track_id: TrackId) -> Response:
    _host_or_controls(service.get_party(party_id))
    return _queue_answer(service.move_up(party_id, track_id))


@bp.patch("/parties/<party_id>")
@_party_limit
@document(summary="Give guests the controls, or take them back (host)", **ON_PARTY,
          body=Controls,
          answers={200: QUEUE_CHANGED,
                   **errors(400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 500)})
def set_controls(party_id: PartyId) -> Response:
    service.get_party(party_id)
    _host(party_id)
    body: Controls = parse_body()
    return _queue_answer(service.set_controls(party_id, body.guests_control))


@bp.delete("/parties/<party_id>")
@_party_limit
@document(summary="End the party (host): every later request answers 410", **ON_PARTY,
          answers={204: Answer("Ended."), **errors(401, 403, 404, 409, 410, 429, 500)})
def end_party(party_id: PartyId) -> Response:
    service.get_party(party_id)
    _host(party_id)
    service.end(party_id)
    return Response(status=204)
