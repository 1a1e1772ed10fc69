"""The playlist service's own errors.

The service raises nothing else for a request it cannot serve; the JSON API and the pages each
turn these into an answer in one table (``app/api/views.py``, ``app/web/views.py``), so neither
has to know about HTTP codes of the other or compare message strings.
"""
from __future__ import annotations


class PlaylistError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(PlaylistError, ValueError):
    """A model, strategy or length the service does not offer. Clients are validated before
    the service is called, so this is a caller's bug or a misconfigured default."""


class UnknownUsers(PlaylistError, LookupError):
    def __init__(self, ids: list[int]):
        self.ids = sorted(ids)
        super().__init__(f"unknown user ids: {self.ids}")


class ModelUnavailable(PlaylistError):
    """No trained model version is active, or its artifact cannot be loaded."""


class CannotBuild(PlaylistError, ValueError):
    """Too few distinct songs qualify for this group with these options.

    ``available`` is set when a playlist was built but came out shorter than asked."""

    def __init__(self, message: str, available: int | None = None):
        super().__init__(message)
        self.available = available


class LogUnavailable(PlaylistError):
    """The predictions log cannot be appended to, so the playlist is not served."""


class AssignmentBusy(PlaylistError):
    """Concurrent first requests kept storing different A/B arms; the caller may retry."""
