"""The builder's bridge to the one serving path shared with the JSON API.

A playlist built on the page is a served prediction like any other: the same A/B assignment,
the same database row and the same predictions-log line, written by app/api/serving.py exactly
as for `POST /predict`. Only the endpoint differs (``/playlists``); errors become exceptions the
page can explain.
"""
from __future__ import annotations

import logging

from app.api.serving import Served, serve_playlist as _serve
from app.errors import ApiError
from app.recommender import service
from app.recommender.service import ModelUnavailableError, Playlist, UnknownUsersError

log = logging.getLogger(__name__)
ENDPOINT = "/playlists"


class ServeError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def serve_playlist(members: list[int], length: int, *, choice: str, strategy: str | None,
                   exclude_explicit: bool) -> Served:
    """Serve and record; ``UnknownUsersError`` and ``ModelUnavailableError`` pass through."""
    try:
        return _serve(members, length, choice=choice, strategy=strategy,  # type: ignore[arg-type]
                      exclude_explicit=exclude_explicit, endpoint=ENDPOINT)
    except ValueError as exc:  # the recommender cannot serve this group with these options
        raise ServeError(422, f"This group cannot be served with these options: {exc}") from None
    except ApiError as exc:
        if exc.error == "playlist_too_short":
            raise ServeError(422, "Not enough distinct songs qualify for this group with these "
                                  "options; ask for a shorter playlist or allow explicit "
                                  "tracks.") from None
        if exc.error == "log_unavailable":
            raise ServeError(503, "The playlist could not be saved right now, so it was not "
                                  "served. Please try again in a moment.") from None
        raise ServeError(exc.status, "The playlist could not be served right now; please try "
                                     "again.") from None


def current_taste_match(view) -> tuple[list[list[float]] | None, str | None]:
    """Taste match of the members under the active model (it is not stored with a prediction).

    It depends only on the members and the model version, so when the serving version is the
    one that built the playlist the numbers are exactly those of the build.
    """
    member_ids = [m.user_id for m in view.members]
    if not member_ids:
        return None, None
    try:
        probe = service.build_playlist(member_ids, 1, model="advanced")
    except (ModelUnavailableError, UnknownUsersError, ValueError):
        return None, None
    except Exception:  # the page still shows the stored playlist
        log.exception("taste match failed")
        return None, None
    if probe.taste_match is None:
        return None, None
    built_with = view.prediction.model_version
    note = None
    if probe.model_version and built_with != probe.model_version:
        note = f"Computed with the model now serving ({probe.model_version})."
    return probe.taste_match, note


def own_top(user_id: int, length: int = 20) -> tuple[Playlist | None, str | None]:
    """A person's own top tracks for their page; a view, not a served playlist, so not logged."""
    try:
        return service.build_playlist([user_id], length, model="advanced"), None
    except ModelUnavailableError:
        return None, ("No recommendation model has been trained yet, so there is no personal "
                      "top list. Train one with “flask --app wsgi model train”.")
    except Exception:
        log.exception("top tracks for user %s failed", user_id)
        return None, "The personal top list could not be computed right now."
