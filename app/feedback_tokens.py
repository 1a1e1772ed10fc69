"""Per-member feedback tokens: proof that a /feedback call comes from someone the playlist was
served to.

Why: prediction ids, member ids and track ids are public (the playlist permalink shows them),
so without a secret anyone could report likes for any playlist and move the A/B result.
``/predict`` hands each member of the group a token, ``EXPIRY.MAC`` where MAC is the first
128 bits of an HMAC-SHA256 over (prediction id, user id, expiry) under a key derived from
``SECRET_KEY``; it is returned only to the caller of ``/predict`` (response headers), never
stored and never shown on a page. A token for another member, another prediction, an altered expiry or one past its
expiry does not verify.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from flask import current_app

_PURPOSE = b"pozytywka feedback token v1"


def _key() -> bytes:
    secret = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def _mac(prediction_id: str, user_id: int, expires: int) -> str:
    message = f"{prediction_id}:{int(user_id)}:{int(expires)}".encode("ascii")
    # 128 bits of the MAC: unforgeable, and a 50-member group's header stays near 2 KB.
    digest = hmac.new(_key(), message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue(prediction_id: str, user_id: int, now: float | None = None) -> str:
    ttl = int(current_app.config.get("FEEDBACK_TOKEN_TTL_SECONDS", 7 * 24 * 3600))
    expires = int(time.time() if now is None else now) + ttl
    return f"{expires}.{_mac(prediction_id, user_id, expires)}"


def issue_all(prediction_id: str, members: list[int]) -> dict[int, str]:
    """One token per distinct member, the requesting user first."""
    return {user_id: issue(prediction_id, user_id) for user_id in dict.fromkeys(members)}


def header_value(tokens: dict[int, str]) -> str:
    """``X-Feedback-Tokens``: ``USER_ID=TOKEN`` pairs joined by commas."""
    return ",".join(f"{user_id}={token}" for user_id, token in tokens.items())


def problem(token: str, prediction_id: str, user_id: int, now: float | None = None) -> str | None:
    """Why ``token`` does not let ``user_id`` report on ``prediction_id``, or None if it does."""
    expires_text, _, mac = token.partition(".")
    if not (expires_text.isascii() and expires_text.isdigit()) or len(expires_text) > 12 \
            or not mac:
        return "malformed"
    expires = int(expires_text)
    expected = _mac(prediction_id, user_id, expires).encode("ascii")
    if not hmac.compare_digest(mac.encode("utf-8", "replace"), expected):
        return "not valid for this prediction and user"
    if expires < (time.time() if now is None else now):
        return "expired"
    return None
