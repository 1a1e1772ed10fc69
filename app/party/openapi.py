"""The parties' part of /openapi.json, from the API's own request models."""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, Field

from app.api.schemas import UserId, _Strict
from app.party.api import Controls, CreateParty, Genre, PartyEventBody


class JoinAsUser(_Strict):
    """Join as a Pozytywka user found by search."""

    join_code: str = Field(min_length=1, max_length=64)
    user_id: UserId


class JoinAsListener(_Strict):
    """Join as a new listener: a few favourite genres (the cold-start path)."""

    join_code: str = Field(min_length=1, max_length=64)
    genres: list[Genre] = Field(min_length=1, max_length=10)
    name: str | None = Field(default=None, max_length=60)


class PartyCreated(BaseModel):
    party_id: str
    join_code: str = Field(description="The secret of the join link (>= 128 bits).")
    host_token: str = Field(description="The host's token: keep it private.")


class GuestJoined(BaseModel):
    guest_id: int
    guest_token: str = Field(description="This guest's token: acts only as this guest.")


class QueueTrack(BaseModel):
    id: str
    name: str
    artist: str
    for_: list[int] = Field(alias="for", description="Guest ids this track is for.")


class QueueGuest(BaseModel):
    guest_id: int
    user_id: int | None
    name: str


class PartyQueue(BaseModel):
    now_playing: QueueTrack | None
    upcoming: list[QueueTrack]
    played: list[QueueTrack]
    guests: list[QueueGuest] = Field(description="The guests here now.")


ERRORS = {
    400: "Malformed JSON (`bad_request`).",
    401: "No token (`unauthorized`): send `Authorization: Bearer TOKEN`.",
    403: "The token is not this party's (`invalid_party_token`), not the host's for a host "
         "action (`host_only`), another guest's (`not_yourself`), of a guest who left "
         "(`guest_left`), or a cookie change without X-Requested-With (`forbidden`).",
    404: "No such party, or a wrong join code (`unknown_party`); unknown users "
         "(`unknown_users`) or guest (`unknown_guest`).",
    405: "Method not allowed (`method_not_allowed`).",
    409: "The party is full (`party_full`), the user is already here on another phone "
         "(`already_joined`), or a concurrent change (`conflict`).",
    410: "The party has ended (`party_ended`).",
    413: "Body larger than MAX_CONTENT_LENGTH (`payload_too_large`).",
    415: "Content-Type is not application/json (`unsupported_media_type`).",
    422: "Invalid fields (`validation_error`, details: a list of {field, reason}).",
    429: "Too many requests from this address (`too_many_requests`); retry after Retry-After.",
    503: "No model to plan with, or the predictions log is unavailable (`model_unavailable`, "
         "`log_unavailable`, `database_unavailable`).",
    500: "Unexpected server fault (`internal_error`).",
}


def party_paths(ref: Callable[..., dict], error: dict) -> tuple[dict[str, Any], dict]:
    """The paths and the security scheme."""
    def errors(*codes: int) -> dict[str, Any]:
        out = {str(c): {"description": ERRORS[c],
                        "content": {"application/json": {"schema": error}}} for c in codes}
        if "401" in out:
            out["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"},
                                                          "description": "Bearer"}}
        return out

    queue = ref(PartyQueue)
    etag = {"ETag": {"description": "The queue's version; send it back as If-None-Match.",
                     "schema": {"type": "string"}},
            "X-Party-Guests-Control": {"description": "1 when the host gave guests the "
                                                      "controls (next, remove, move up).",
                                       "schema": {"type": "string", "enum": ["0", "1"]}}}
    queue_ok = {"description": "The queue after the change.", "headers": etag,
                "content": {"application/json": {"schema": queue}}}
    token = [{"partyToken": []}]
    pid = {"name": "party_id", "in": "path", "required": True,
           "schema": {"type": "string", "maxLength": 32}}
    track = {"name": "track_id", "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": 64}}
    guest = {"name": "guest_id", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}}

    def body(model, example=None):
        content: dict[str, Any] = {"schema": ref(model, "validation")}
        if example is not None:
            content["example"] = example
        return {"required": True, "content": {"application/json": content}}

    tag = ["parties"]
    paths = {
        "/parties": {"post": {
            "summary": "Start a party for the host and their group", "tags": tag,
            "description": "The queue is planned and starts playing at once. The join code "
                           "makes the join link; the host token authorises host actions.",
            "requestBody": body(CreateParty, {"host_user_id": 123, "members": [124, 125]}),
            "responses": {"201": {"description": "Created.", "content": {
                "application/json": {"schema": ref(PartyCreated)}}},
                **errors(400, 404, 413, 415, 422, 429, 503, 500)}}},
        "/parties/{party_id}/guests": {"post": {
            "summary": "Join a party from a phone", "tags": tag, "parameters": [pid],
            "description": "As a Pozytywka user (`user_id`) or as a new listener who picks "
                           "favourite genres (`genres`, optional `name`). Rate-limited per "
                           "address against join-code guessing.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [ref(JoinAsUser, "validation"), ref(JoinAsListener, "validation")]}}}},
            "responses": {"201": {"description": "Joined.", "content": {
                "application/json": {"schema": ref(GuestJoined)}}},
                **errors(400, 404, 409, 410, 413, 415, 422, 429, 503, 500)}}},
        "/parties/{party_id}/guests/{guest_id}": {"delete": {
            "summary": "Leave (the guest's token) or remove a guest (the host's)",
            "tags": tag, "parameters": [pid, guest], "security": token,
            "responses": {"200": queue_ok, **errors(401, 403, 404, 409, 410, 429, 503, 500)}}},
        "/parties/{party_id}/queue": {"get": {
            "summary": "The queue: now playing, upcoming with whom each is for, played, guests",
            "tags": tag, "parameters": [pid, {
                "name": "If-None-Match", "in": "header", "required": False,
                "schema": {"type": "string"}}], "security": token,
            "description": "Poll with If-None-Match: 304 while nothing changed.",
            "responses": {"200": {"description": "The queue.", "headers": etag,
                                  "content": {"application/json": {"schema": queue}}},
                          "304": {"description": "Unchanged since the ETag sent.",
                                  "headers": {"ETag": etag["ETag"]}},
                          **errors(401, 403, 404, 409, 410, 429, 503, 500)}}},
        "/parties/{party_id}/events": {"post": {
            "summary": "A guest's skip or like; the player's play", "tags": tag,
            "parameters": [pid], "security": token,
            "description": "A skip or like changes that guest's taste for the rest of the "
                           "party and re-plans the upcoming tracks. A skip of the playing "
                           "track moves on when most of the room (or the host) skipped it. "
                           "`play` (host token: the player) makes an upcoming track play.",
            "requestBody": body(PartyEventBody),
            "responses": {"200": queue_ok,
                          **errors(400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 503,
                                   500)}}},
        "/parties/{party_id}/next": {"post": {
            "summary": "Play the next track (host, or guests given the controls)",
            "tags": tag, "parameters": [pid], "security": token,
            "responses": {"200": queue_ok, **errors(401, 403, 404, 409, 410, 429, 503, 500)}}},
        "/parties/{party_id}/queue/{track_id}": {"delete": {
            "summary": "Remove an upcoming track (host, or guests given the controls)",
            "tags": tag, "parameters": [pid, track], "security": token,
            "responses": {"200": queue_ok,
                          **errors(401, 403, 404, 409, 410, 422, 429, 503, 500)}}},
        "/parties/{party_id}/queue/{track_id}/up": {"post": {
            "summary": "Move an upcoming track one place up (host, or guests given the "
                       "controls); it stays there through re-plans",
            "tags": tag, "parameters": [pid, track], "security": token,
            "responses": {"200": queue_ok,
                          **errors(401, 403, 404, 409, 410, 422, 429, 503, 500)}}},
        "/parties/{party_id}": {
            "patch": {"summary": "Give guests the controls, or take them back (host)",
                      "tags": tag, "parameters": [pid], "security": token,
                      "requestBody": body(Controls),
                      "responses": {"200": queue_ok,
                                    **errors(400, 401, 403, 404, 409, 410, 413, 415, 422, 429,
                                             500)}},
            "delete": {"summary": "End the party (host): every later request answers 410",
                       "tags": tag, "parameters": [pid], "security": token,
                       "responses": {"204": {"description": "Ended."},
                                     **errors(401, 403, 404, 409, 410, 429, 500)}}},
    }
    scheme = {"partyToken": {"type": "http", "scheme": "bearer",
                             "description": "The host_token or a guest_token."}}
    return paths, scheme
