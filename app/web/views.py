"""Routes of the public pages: builder, playlist permalink and downloads, user search and pages."""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import (
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict

from app.api.views import predict_limit  # the builder shares the predict limit per address
from app.db import Prediction, User
from app.db.lookups import existing_users
from app.extensions import db
from app.playlists import service as playlists
from app.playlists.build import Playlist, TrackDetails
from app.playlists.errors import (AssignmentBusy, CannotBuild, InvalidRequest, LogUnavailable,
                                  ModelUnavailable, PlaylistError, UnknownUsers)
from app.playlists.request import PlaylistRequest
from app.playlists.row_json import rounded
from app.web import bp
from app.web.forms import (
    DEFAULT_LENGTH,
    DEFAULT_MODEL,
    MODEL_CHOICES,
    BASE_HELP,
    STRATEGY_HELP,
    BuildForm,
    parse_member_ids,
    strategies,
)
from app.web.queries import (
    catalogue_counts_cached,
    history_summary,
    search_users,
    top_genres,
)
from app.web.stored import as_csv, as_json, as_m3u, playlist_view
from app.web.taste import taste_pairs

log = logging.getLogger(__name__)
ENDPOINT = "/playlists"  # recorded with the prediction, like the API's endpoint paths

DOWNLOADS = {
    "json": "application/json",
    "csv": "text/csv",
    "m3u": "audio/x-mpegurl",
}


def _max_group() -> int:
    return int(current_app.config.get("MAX_GROUP_SIZE", 50))


def _options(source: MultiDict) -> dict[str, Any]:
    """Builder options from a query string or a posted form, falling back to defaults."""
    names, default_strategy = strategies()
    maximum = int(current_app.config.get("MAX_PLAYLIST_LENGTH", 100))
    length = source.get("length", type=int)
    strategy = source.get("strategy", "")
    model = source.get("model", DEFAULT_MODEL)
    return {
        "length": length if length and 1 <= length <= maximum else DEFAULT_LENGTH,
        "strategy": strategy if strategy in names else default_strategy,
        "exclude_explicit": source.get("exclude_explicit", "") in ("1", "y", "on", "true"),
        "model": model if model in dict(MODEL_CHOICES) else DEFAULT_MODEL,
    }


def builder_url(members: list[int], options: dict[str, Any] | None = None, **extra: Any) -> str:
    """The builder in a given state; defaults are left out to keep links short."""
    params: list[tuple[str, Any]] = [("member", m) for m in members]
    if options:
        _, default_strategy = strategies()
        if options.get("length", DEFAULT_LENGTH) != DEFAULT_LENGTH:
            params.append(("length", options["length"]))
        if options.get("strategy") and options["strategy"] != default_strategy:
            params.append(("strategy", options["strategy"]))
        if options.get("exclude_explicit"):
            params.append(("exclude_explicit", "1"))
        if options.get("model", DEFAULT_MODEL) != DEFAULT_MODEL:
            params.append(("model", options["model"]))
    params.extend((k, v) for k, v in extra.items() if not (k == "page" and v == 1))
    query = urlencode([(k, v) for k, v in params if v not in (None, "")])
    return url_for("web.index") + (f"?{query}" if query else "")


@bp.app_template_global()
def people_open() -> bool:
    """Whether this request may see people's details (pages, city, genres, history): always
    with PUBLIC_PEOPLE_PAGES, else only a logged-in admin. Once per request."""
    if "people_open" not in g:
        from sqlalchemy.exc import SQLAlchemyError

        from app.admin.auth import current_admin

        try:
            g.people_open = bool(current_app.config.get("PUBLIC_PEOPLE_PAGES")) \
                or current_admin() is not None
        except SQLAlchemyError:  # an error page while the database is down: closed
            db.session.rollback()
            g.people_open = False
    return g.people_open


def _people_login():
    """A closed people page: the admin login, back here afterwards."""
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


@bp.app_template_global()
def builder_link(members: list[int], options: dict[str, Any] | None = None, **extra: Any) -> str:
    return builder_url(members, options, **extra)


def _render_builder(members: list[int], options: dict[str, Any], *, errors: list[str] | None = None,
                    status: int = 200, unknown: list[int] | None = None):
    users = existing_users(members)
    unknown = list(unknown or []) + [m for m in members if m not in users]
    members = [m for m in members if m in users]
    query = request.args.get("q", "") if request.method == "GET" else ""
    page = request.args.get("page", 1, type=int) or 1
    results = search_users(query, page, by_city=people_open()) if query.strip() else None
    genres = top_genres(members) if people_open() else {}
    form = BuildForm(formdata=None, data=options)
    messages = list(errors or [])
    if unknown:
        messages.append(_unknown_message(unknown))
    return render_template(
        "builder.html",
        members=[users[m] for m in members], member_ids=members, genres=genres,
        options=options, form=form, query=query, results=results, errors=messages,
        counts=catalogue_counts_cached(), strategy_help=STRATEGY_HELP,
        max_group=_max_group(),
    ), status


def _unknown_message(ids: list[int]) -> str:
    listed = ", ".join(str(i) for i in ids[:10]) + ("…" if len(ids) > 10 else "")
    noun = "user" if len(ids) == 1 else "users"
    return f"There is no {noun} with id {listed}; left out of the group."


@bp.get("/")
def index():
    members, bad = parse_member_ids(request.args.getlist("member"), _max_group())
    errors = [f"“{b}” is not a user id." for b in bad[:5]]
    return _render_builder(members, _options(request.args), errors=errors)


@bp.post("/playlists")
@predict_limit
def build():
    form = BuildForm()
    members, _bad = parse_member_ids(request.form.getlist("member"), _max_group())
    options = _options(request.form)
    if not form.validate():
        problems = [msg for field, msgs in form.errors.items() for msg in msgs]
        return _render_builder(members, options, errors=problems, status=422)
    if not members:
        return _render_builder(members, options, status=422, errors=[
            "The group is empty. Search for people above and add at least one member."])
    try:
        served = playlists.serve(PlaylistRequest.settle(
            members, form.length.data, choice=form.model.data, strategy=form.strategy.data,
            exclude_explicit=bool(form.exclude_explicit.data), endpoint=ENDPOINT,
            builder=True))
    except UnknownUsers as exc:
        known = [m for m in members if m not in exc.ids]
        return _render_builder(known, options, status=422, unknown=exc.ids)
    except PlaylistError as exc:
        status, message = _page_error(exc)
        return _render_builder(members, options, status=status, errors=[message])
    return redirect(url_for("web.playlist", prediction_id=served.prediction_id), code=303)


def _page_error(exc: PlaylistError) -> tuple[int, str]:
    """The playlist service's errors as builder messages: the one table for the pages."""
    if isinstance(exc, ModelUnavailable):
        return 503, ("No recommendation model is available yet, so the advanced model cannot "
                     "run. Choose the base model, or train one with “flask --app wsgi model "
                     "train”.")
    if isinstance(exc, CannotBuild) and exc.available is not None:
        return 422, ("Not enough distinct songs qualify for this group with these options; ask "
                     "for a shorter playlist or allow explicit tracks.")
    if isinstance(exc, (CannotBuild, InvalidRequest)):
        return 422, f"This group cannot be served with these options: {exc.message}"
    if isinstance(exc, LogUnavailable):
        return 503, ("The playlist could not be saved right now, so it was not served. Please "
                     "try again in a moment.")
    if isinstance(exc, AssignmentBusy):
        return 503, "The playlist could not be served right now; please try again."
    raise TypeError(f"no page message for {type(exc).__name__}") from exc


def _taste_match(view) -> tuple[list[list[float]] | None, str | None]:
    """The members' taste match under the serving model (it is not stored with a prediction),
    and a note when that model is not the one that built the playlist."""
    member_ids = [m.user_id for m in view.members]
    if not member_ids:
        return None, None
    try:
        matrix, version = playlists.taste_match(member_ids)
    except PlaylistError:
        return None, None
    except Exception:  # the page still shows the stored playlist
        log.exception("taste match failed")
        return None, None
    note = None
    if version and view.prediction.model_version != version:
        note = f"Computed with the model now serving ({version})."
    return matrix, note


def _own_top(user_id: int, length: int = 20) -> tuple[Playlist | None, str | None]:
    """A person's own top tracks for their page; a view, not a served playlist, so not logged."""
    try:
        return playlists.build_playlist(PlaylistRequest.settle([user_id], length)), None
    except ModelUnavailable:
        return None, ("No recommendation model has been trained yet, so there is no personal "
                      "top list. Train one with “flask --app wsgi model train”.")
    except Exception:
        log.exception("top tracks for user %s failed", user_id)
        return None, "The personal top list could not be computed right now."


def _by_liking(top: Playlist) -> list[tuple[TrackDetails, float | None]]:
    """The tracks of a person's own top list with their liking as stored (four decimals),
    highest first: the playlist comes in listening order, a top list reads best by liking."""
    scores = rounded(top.group.member_scores)
    likings = [row[0] for row in scores] if scores is not None else [None] * len(top.tracks)
    pairs = list(zip(top.tracks, likings))
    return sorted(pairs, key=lambda p: float("-inf") if p[1] is None else p[1], reverse=True)


def _prediction_or_404(prediction_id: str) -> Prediction:
    if len(prediction_id) > 64:
        abort(404)
    prediction = db.session.get(Prediction, prediction_id)
    if prediction is None:
        abort(404)
    return prediction


@bp.get("/playlists/<prediction_id>")
def playlist(prediction_id: str):
    prediction = _prediction_or_404(prediction_id)
    view = playlist_view(prediction)
    matrix, note = _taste_match(view)
    view = playlist_view(prediction, matrix, note)
    options = {"length": prediction.playlist_length, "strategy": prediction.strategy,
               "exclude_explicit": prediction.exclude_explicit,
               "model": "ab" if prediction.is_ab else prediction.model}
    return render_template("playlist.html", view=view, options=options,
                           member_ids=[m.user_id for m in view.members],
                           taste_pairs=taste_pairs(view), strategy_help=STRATEGY_HELP,
                           base_help=BASE_HELP)


@bp.get("/strategies", endpoint="strategies")
def strategies_page():
    """What each way of building a playlist does, from the one table the builder uses too."""
    names, default = strategies()
    return render_template("strategies.html", names=names, default=default,
                           strategy_help=STRATEGY_HELP, base_help=BASE_HELP)


@bp.get("/playlists/<prediction_id>.<any(json, csv, m3u):fmt>")
def download(prediction_id: str, fmt: str):
    view = playlist_view(_prediction_or_404(prediction_id))
    body = {"json": as_json, "csv": as_csv, "m3u": as_m3u}[fmt](view)
    mimetype = DOWNLOADS[fmt]
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="pozytywka-{view.prediction.id}.{fmt}"')
    return response


@bp.get("/users/search")
def user_search():
    if not people_open():
        return _people_login()
    query = request.args.get("q", "")
    page = request.args.get("page", 1, type=int) or 1
    members, _ = parse_member_ids(request.args.getlist("member"), _max_group())
    results = search_users(query, page) if query.strip() else None
    return render_template("search.html", query=query, results=results, member_ids=members,
                           options=_options(request.args))


@bp.get("/users/search.json")
def user_search_json():
    query = request.args.get("q", "")
    page = request.args.get("page", 1, type=int) or 1
    limit = min(max(request.args.get("limit", 8, type=int) or 8, 1), 25)
    full = people_open()
    results = search_users(query, page, per_page=limit, by_city=full)
    hits = [{"user_id": h.user_id, "name": h.name} for h in results.hits]
    if full:
        for hit, h in zip(hits, results.hits):
            hit.update(city=h.city, favourite_genres=h.favourite_genres,
                       url=url_for("web.user_page", user_id=h.user_id))
    return jsonify({
        "query": results.query, "page": results.page, "pages": results.pages,
        "total": results.total, "results": hits,
    })


@bp.get("/users/<int(max=2147483647):user_id>")  # ids are 32-bit; larger: 404
def user_page(user_id: int):
    if not people_open():
        return _people_login()
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    summary = history_summary(user_id)
    top, top_error = _own_top(user_id, 20)
    top_items = _by_liking(top) if top else []
    return render_template(
        "user.html", user=user, summary=summary, top=top, top_items=top_items,
        top_error=top_error,
        declared=sorted(g.name for g in user.favourite_genres),
        artist_max=max((c.count for c in summary.top_artists), default=0),
        genre_max=max((c.count for c in summary.top_genres), default=0),
    )
