"""Signed party tokens (itsdangerous): the host's and each guest's proof of who they are.

A token names its party and either the host or one guest, signed under a key derived from
``SECRET_KEY`` with this purpose's salt, so it cannot be altered, moved to another party or
guest, or forged. Tokens are handed out once (the create and join answers, the page's HttpOnly
cookie) and never stored, logged or written into a page. Ending the party revokes them all
(every request to an ended party answers 410); a guest's token stops working when they leave.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

_SALT = "pozytywka party token v1"


@dataclass(frozen=True)
class Actor:
    party_id: str
    guest_id: int | None  # None: the host

    @property
    def is_host(self) -> bool:
        return self.guest_id is None


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(str(current_app.config["SECRET_KEY"]), salt=_SALT)


def host_token(party_id: str) -> str:
    return _serializer().dumps({"p": party_id, "h": 1})


def guest_token(party_id: str, guest_id: int) -> str:
    return _serializer().dumps({"p": party_id, "g": int(guest_id)})


def read(token: str) -> Actor | None:
    """The actor a token proves, or None for anything that does not verify."""
    if not token or len(token) > 300:
        return None
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("p"), str):
        return None
    if data.get("h") == 1:
        return Actor(data["p"], None)
    guest = data.get("g")
    if isinstance(guest, int) and not isinstance(guest, bool):
        return Actor(data["p"], guest)
    return None
