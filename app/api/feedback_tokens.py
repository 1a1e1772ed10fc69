"""Per-member feedback tokens: proof that a /feedback call comes from someone the playlist was
served to.

Why: prediction ids, member ids and track ids are public (the playlist permalink shows them),
so without a secret anyone could report likes for any playlist and move the A/B result.
``/predict`` hands each member of the group a token: itsdangerous's timestamped HMAC-SHA256
signature of (prediction id, user id) under ``SECRET_KEY`` with this module's own salt, sent
without the signed value (the /feedback body carries the ids), so a token is ``TIME.MAC``. It
is returned only to the caller of ``/predict`` (response headers), never stored and never
shown on a page. A token for another member, another prediction, an altered time or one older
than ``FEEDBACK_TOKEN_TTL_SECONDS`` does not verify.
"""
from __future__ import annotations

import hashlib

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import base64_encode, int_to_bytes

_SALT = "pozytywka feedback token v1"


def _signer(now: float | None = None) -> TimestampSigner:
    if now is not None:  # tokens issued in the past, for tests of expiry
        signer = _new_signer(current_app.config["SECRET_KEY"])
        signer.get_timestamp = lambda: int(now)
        return signer
    # One signer per app and SECRET_KEY, its key derived once: a /predict signs a token per
    # member, and building a signer and deriving its key each time cost more than the HMACs.
    secret = current_app.config["SECRET_KEY"]
    held = current_app.extensions.get("feedback_token_signer")
    if held is None or held[0] != secret:
        held = current_app.extensions["feedback_token_signer"] = (secret, _new_signer(secret))
    return held[1]


def _new_signer(secret) -> TimestampSigner:
    """itsdangerous's signer for ``secret`` under this module's salt, holding the derived key
    (``key_derivation="none"`` over it signs exactly as the signer deriving it every time)."""
    derived = TimestampSigner(secret, salt=_SALT, digest_method=hashlib.sha256).derive_key()
    return TimestampSigner(derived, salt=_SALT, digest_method=hashlib.sha256,
                           key_derivation="none")


def _value(prediction_id: str, user_id: int) -> str:
    return f"{prediction_id}:{int(user_id)}"


def issue(prediction_id: str, user_id: int, now: float | None = None) -> str:
    value = _value(prediction_id, user_id)
    return _signer(now).sign(value).decode("ascii")[len(value) + 1:]


def issue_all(prediction_id: str, members: list[int], now: float | None = None
              ) -> dict[int, str]:
    """One token per distinct member, the requesting user first: what ``issue`` gives each,
    with the time stamp encoded once for the group (``TimestampSigner.sign`` signs
    ``VALUE.TIME`` and appends ``.MAC``; the token is ``TIME.MAC``)."""
    signer = _signer(now)
    stamp = base64_encode(int_to_bytes(signer.get_timestamp()))
    sep = signer.sep if isinstance(signer.sep, bytes) else signer.sep.encode("ascii")
    out = {}
    for user_id in dict.fromkeys(members):
        mac = signer.get_signature(_value(prediction_id, user_id).encode("utf-8") + sep + stamp)
        out[user_id] = (stamp + sep + mac).decode("ascii")
    return out


def header_value(tokens: dict[int, str]) -> str:
    """``X-Feedback-Tokens``: ``USER_ID=TOKEN`` pairs joined by commas."""
    return ",".join(f"{user_id}={token}" for user_id, token in tokens.items())


def problem(token: str, prediction_id: str, user_id: int) -> str | None:
    """Why ``token`` does not let ``user_id`` report on ``prediction_id``, or None if it does."""
    if not token.isascii() or token.count(".") != 1 or len(token) > 128:
        return "malformed"
    ttl = int(current_app.config.get("FEEDBACK_TOKEN_TTL_SECONDS", 7 * 24 * 3600))
    try:
        _signer().unsign(f"{_value(prediction_id, user_id)}.{token}", max_age=ttl)
    except SignatureExpired:
        return "expired"
    except BadSignature:
        return "not valid for this prediction and user"
    return None
