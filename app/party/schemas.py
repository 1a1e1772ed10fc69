"""Request and response schemas of the parties' JSON API: validation and /openapi.json."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from app.api.openapi import Answer, Header, SecurityScheme
from app.api.schemas import ErrorBody, UserId, _Strict
from app.recommender.strategies import STRATEGIES

Genre = Annotated[str, Field(min_length=1, max_length=100)]
PartyId = Annotated[str, Field(max_length=32)]
TrackId = Annotated[str, Field(max_length=64)]
GuestId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class CreateParty(_Strict):
    """A party for the host and the group they chose (the builder's members)."""

    host_user_id: UserId
    members: list[UserId] = Field(default_factory=list, max_length=31)
    strategy: Literal[STRATEGIES] | None = None  # type: ignore[valid-type]


class JoinAsUser(_Strict):
    """Join as a Pozytywka user found by search."""

    join_code: str = Field(min_length=1, max_length=64)
    user_id: UserId
    genres: None = Field(default=None, description="Leave out: for new listeners only.")
    name: str | None = Field(default=None, max_length=60)


class JoinAsListener(_Strict):
    """Join as a new listener: a few favourite genres (the cold-start path)."""

    join_code: str = Field(min_length=1, max_length=64)
    user_id: None = Field(default=None, description="Leave out: for Pozytywka users only.")
    genres: list[Genre] = Field(min_length=1, max_length=10)
    name: str | None = Field(default=None, max_length=60)


class JoinParty(_Strict):
    """Join as a Pozytywka user (``user_id``) or as a new listener (``genres``).

    One model validates both ways, so that sending both is refused with one clear reason; the
    docs show the two ways, which accept exactly what this model accepts, as alternatives.
    """

    join_code: str = Field(min_length=1, max_length=64)
    user_id: UserId | None = None
    genres: list[Genre] | None = Field(default=None, min_length=1, max_length=10)
    name: str | None = Field(default=None, max_length=60)

    @model_validator(mode="after")
    def _one_way(self):
        if (self.user_id is None) == (self.genres is None):
            raise ValueError("give either user_id or genres")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        return {"oneOf": [handler(way.__pydantic_core_schema__)
                          for way in (JoinAsUser, JoinAsListener)]}


class PartyEventBody(_Strict):
    guest_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    track_id: str = Field(min_length=1, max_length=64)
    event: Literal["skip", "like", "play"]


class Controls(_Strict):
    guests_control: bool


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


# ----- what /openapi.json says beyond the models -----

PARTY_TOKEN = SecurityScheme("partyToken", "The host_token or a guest_token.")

ERRORS = {status: Answer(description, ErrorBody, headers) for status, description, headers in [
    (400, "Malformed JSON (`bad_request`).", {}),
    (401, "No token (`unauthorized`): send `Authorization: Bearer TOKEN`.",
     {"WWW-Authenticate": Header("The challenge: `Bearer ...`.")}),
    (403, "The token is not this party's (`invalid_party_token`), not the host's for a host "
          "action (`host_only`), another guest's (`not_yourself`), of a guest who left "
          "(`guest_left`), or a cookie change without X-Requested-With (`forbidden`).", {}),
    (404, "No such party, or a wrong join code (`unknown_party`); unknown users "
          "(`unknown_users`) or guest (`unknown_guest`).", {}),
    (409, "The party is full (`party_full`), the user is already here on another phone "
          "(`already_joined`), or a concurrent change (`conflict`).", {}),
    (410, "The party has ended (`party_ended`).", {}),
    (413, "Body larger than MAX_CONTENT_LENGTH (`payload_too_large`).", {}),
    (415, "Content-Type is not application/json (`unsupported_media_type`).", {}),
    (422, "Invalid fields (`validation_error`, details: a list of {field, reason}).", {}),
    (429, "Too many requests from this address (`too_many_requests`); retry after "
          "Retry-After.", {}),
    (503, "No model to plan with, or the predictions log is unavailable (`model_unavailable`, "
          "`log_unavailable`, `database_unavailable`).", {}),
    (500, "Unexpected server fault (`internal_error`).", {}),
]}


def errors(*statuses: int) -> dict[int, Answer]:
    return {status: ERRORS[status] for status in statuses}


ETAG = Header("The queue's version; send it back as If-None-Match.")
QUEUE_HEADERS = {
    "ETag": ETAG,
    "X-Party-Guests-Control": Header("1 when the host gave guests the controls (next, remove, "
                                     "move up).", ("0", "1")),
}
QUEUE_CHANGED = Answer("The queue after the change.", PartyQueue, QUEUE_HEADERS)
