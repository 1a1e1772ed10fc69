"""API clients and who is calling: the bearer key of a request, checked once per request.

Why: the seed's API trusts the ``user_id`` it is sent, so anyone who can reach it can make
playlists for any user and steer the A/B verdict. In a deployment ``/predict`` is called by
Pozytywka's own backend on behalf of a signed-in listener; that backend holds a key
(``flask --app wsgi api-key create NAME``) and only playlists it asked for count as evidence.
Calls without a key are served only where ``ALLOW_ANONYMOUS_API`` is on (the demo), and are
recorded as untrusted. A wrong or revoked key is refused, never treated as anonymous.

Keys are ``pzk_`` and 43 URL-safe characters (256 bits); the database keeps their SHA-256.
A process remembers a verified key for ``API_CLIENT_CACHE_SECONDS``, so a revocation reaches
other processes that much later (at once in the process that revoked it).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from flask import current_app, g, request
from sqlalchemy import select

from app.common.clock import utcnow
from app.common.lru import LRU
from app.db.api_clients import ApiClient
from app.extensions import db
from app.security.audit import audit

KEY_PREFIX = "pzk_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")
_KEY_PATTERN = re.compile(r"pzk_[A-Za-z0-9_-]{43}")


class ClientError(ValueError):
    """A management request that cannot be honoured (bad or taken name, unknown client)."""


@dataclass(frozen=True)
class Caller:
    """Who made this request: ``client_id`` None for an anonymous caller."""

    client_id: int | None
    name: str | None
    problem: str | None = None   # why the presented credentials were refused

    @property
    def trusted(self) -> bool:
        return self.client_id is not None


ANONYMOUS = Caller(None, None)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_client(name: str) -> tuple[ApiClient, str]:
    """A new client and its key; the key is returned once and never stored."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise ClientError("the name must be 1-100 letters, digits, '_', '.', '@' or '-'")
    if db.session.scalar(select(ApiClient.id).where(ApiClient.name == name)) is not None:
        raise ClientError(f"an API client named {name!r} already exists (revoke it and "
                          "create one under a new name to change its key)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(name=name, key_hash=hash_key(key), key_prefix=key[:10],
                       created_at=utcnow())
    db.session.add(client)
    db.session.commit()
    audit("audit: API client %s created (key %s...)", name, client.key_prefix)
    return client, key


def list_clients() -> list[ApiClient]:
    return list(db.session.scalars(select(ApiClient).order_by(ApiClient.id)))


def revoke_client(name: str) -> ApiClient:
    client = db.session.scalar(select(ApiClient).where(ApiClient.name == name))
    if client is None:
        raise ClientError(f"no API client named {name!r}")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        db.session.commit()
        audit("audit: API client %s revoked (key %s...)", name, client.key_prefix)
    _verified().clear()
    return client


# ----- the caller of a request ---------------------------------------------------------------

def _verified() -> LRU[str, tuple[float, int, str]]:
    cache = current_app.extensions.get("api_client_keys")
    if cache is None:
        cache = current_app.extensions.setdefault("api_client_keys", LRU(10_000))
    return cache


def _lookup(key: str) -> tuple[int, str] | None:
    digest = hash_key(key)
    ttl = float(current_app.config.get("API_CLIENT_CACHE_SECONDS", 5))
    hit = _verified().get(digest)
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1], hit[2]
    row = db.session.execute(select(ApiClient.id, ApiClient.name, ApiClient.key_hash)
                             .where(ApiClient.key_hash == digest,
                                     ApiClient.revoked_at.is_(None))).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    _verified().put(digest, (time.monotonic(), row.id, row.name))
    return row.id, row.name


def current_caller() -> Caller:
    """The caller of this request, worked out once (the rate limiter asks before the view)."""
    caller = g.get("api_caller")
    if caller is None:
        caller = g.api_caller = _identify()
    return caller


def _identify() -> Caller:
    header = request.headers.get("Authorization")
    if header is None:
        return ANONYMOUS
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return Caller(None, None, "the Authorization header must be 'Bearer KEY'")
    if not _KEY_PATTERN.fullmatch(key):
        return Caller(None, None, "the API key is malformed")
    found = _lookup(key)
    if found is None:
        return Caller(None, None, "the API key is unknown or revoked")
    return Caller(found[0], found[1])


def rate_limit_key() -> str:
    """Authenticated clients are limited per client, everyone else per address."""
    from flask_limiter.util import get_remote_address

    caller = current_caller()
    if caller.trusted:
        return f"api-client:{caller.client_id}"
    return get_remote_address()


def predict_limit() -> str:
    caller = current_caller()
    return str(current_app.config["CLIENT_PREDICT_RATE_LIMIT" if caller.trusted
                                  else "PREDICT_RATE_LIMIT"])


def feedback_limit() -> str:
    caller = current_caller()
    return str(current_app.config["CLIENT_FEEDBACK_RATE_LIMIT" if caller.trusted
                                  else "FEEDBACK_RATE_LIMIT"])


def require_caller() -> Caller:
    """The caller, or the API's 401 when its key is refused or anonymous calls are off."""
    from app.errors import ApiError

    caller = current_caller()
    challenge = {"WWW-Authenticate": 'Bearer realm="pozytywka"'}
    if caller.problem is not None:
        raise ApiError(401, "invalid_api_key", caller.problem, None, challenge)
    if not caller.trusted and not current_app.config.get("ALLOW_ANONYMOUS_API"):
        raise ApiError(401, "api_key_required",
                       "this API needs a client key: send 'Authorization: Bearer KEY' (keys "
                       "come from `flask --app wsgi api-key create NAME`)", None, challenge)
    return caller
