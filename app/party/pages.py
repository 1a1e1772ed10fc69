"""The party's pages: start from the builder, join from a link or QR code, the live page.

The token a page acts with lives in an HttpOnly, SameSite=Strict cookie (``pz_party_ID``),
never in the page: the page's script calls the JSON API with the cookie and the
``X-Requested-With`` header. The join code is the invitation itself, so the host's page shows
it as a link and a QR code (an SVG drawn here by ``segno``).
"""
from __future__ import annotations

import io

import segno
from flask import (Blueprint, Response, abort, current_app, redirect, render_template, request,
                   url_for)
from sqlalchemy import select

from app.db import Genre
from app.extensions import db, limiter
from app.party import service, tokens
from app.party.api import COOKIE_PREFIX
from app.party.service import PartyError
from app.playlists.errors import PlaylistError
from app.web.errors import error_page, register_html_errors
from app.web.forms import parse_member_ids
from app.web.queries import search_users

bp = Blueprint("party_pages", __name__)
register_html_errors(bp)

# failed join attempts (wrong party or code), by page or API, count together per address
_join_limit = limiter.shared_limit(lambda: current_app.config["PARTY_JOIN_RATE_LIMIT"],
                                   scope="party_join",
                                   deduct_when=lambda response: response.status_code == 404)
_create_limit = limiter.limit(lambda: current_app.config["PARTY_CREATE_RATE_LIMIT"])


@bp.errorhandler(PartyError)
def _party_error(exc: PartyError):
    if exc.status == 410:
        return render_template("party_ended.html"), 410
    return error_page(exc.status if exc.status in (403, 404, 409, 422) else 400, exc.message)


@bp.errorhandler(PlaylistError)
def _playlist_error(exc: PlaylistError):
    return error_page(503 if "model" in type(exc).__name__.lower() else 422, exc.message)


def _set_cookie(response: Response, party_id: str, token: str) -> Response:
    response.set_cookie(COOKIE_PREFIX + party_id, token, httponly=True, samesite="Strict",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                        max_age=12 * 3600, path="/")
    return response


def _actor(party_id: str) -> tokens.Actor | None:
    who = tokens.read(request.cookies.get(COOKIE_PREFIX + party_id, ""))
    return who if who is not None and who.party_id == party_id else None


@bp.post("/party/start")
@_create_limit
def start():
    """From the builder: the first member hosts, the rest of the group are the guests."""
    members, problems = parse_member_ids(request.form.getlist("member"),
                                         int(current_app.config["MAX_GROUP_SIZE"]))
    if problems or not members:
        return error_page(400, "choose the group in the builder first")
    party, host_token = service.create(members[0], members[1:32], None)
    return _set_cookie(redirect(url_for("party_pages.live", party_id=party.id), 303),
                       party.id, host_token)


@bp.get("/party/<party_id>/join")
@_join_limit
def join_form(party_id: str):
    party = service.get_party(party_id)
    code = request.args.get("code", "")
    service.check_code(party, code)
    genres = db.session.scalars(select(Genre.name).order_by(Genre.name)).all()
    query = request.args.get("q", "")[:100]
    results = search_users(query, 1, per_page=8) if query.strip() else None
    return render_template("party_join.html", party=party, code=code, genres=genres,
                           max_genres=10, query=query, results=results)


@bp.post("/party/<party_id>/join")
@_join_limit
def join(party_id: str):
    form = request.form
    code = form.get("code", "")
    user_id = form.get("user_id", "").strip()
    genres = form.getlist("genre")[:10]
    if user_id:
        if not user_id.isdigit() or int(user_id) > 2**31 - 1:
            return error_page(422, "pick a listener from the search")
        guest, token = service.join(party_id, code, int(user_id), None, None)
    else:
        guest, token = service.join(party_id, code, None, genres, form.get("name", "")[:60])
    return _set_cookie(redirect(url_for("party_pages.live", party_id=party_id), 303),
                       party_id, token)


@bp.get("/party/<party_id>")
def live(party_id: str):
    party = service.get_party(party_id)
    who = _actor(party_id)
    if who is None:
        return error_page(403, "open the party's join link first")
    if not who.is_host:
        service.seen(party, who.guest_id)
    party = service.refresh(party)
    me = None
    if not who.is_host:
        me = next((g for g in service.guests_of(party_id) if g.id == who.guest_id), None)
        if me is None or me.left_at is not None:
            return error_page(403, "you have left this party; open the join link to come back")
    join_url = url_for("party_pages.join_form", party_id=party.id, code=party.join_code,
                       _external=True) if who.is_host else None
    return render_template("party_live.html", party=party, queue=service.queue(party),
                           is_host=who.is_host, me=me, join_url=join_url,
                           etag=service.etag(party))


@bp.get("/party/<party_id>/qr.svg")
def qr(party_id: str):
    party = service.get_party(party_id)
    who = _actor(party_id)
    if who is None or not who.is_host:
        abort(403)
    url = url_for("party_pages.join_form", party_id=party.id, code=party.join_code,
                  _external=True)
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=6, border=2,
                                    title="QR code of the party's join link")
    response = Response(out.getvalue(), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, no-store"
    return response
