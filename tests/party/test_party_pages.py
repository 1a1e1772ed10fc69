"""The party's pages through the test client: start from the builder, join, live page, QR."""
from __future__ import annotations

import re

from app.db import Genre, User
from app.extensions import db


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_start_join_and_live_pages(api_app):
    host = api_app.test_client()
    with api_app.app_context():
        users = db.session.scalars(db.select(User.user_id).order_by(User.user_id).limit(3)).all()
        genre = db.session.scalar(db.select(Genre.name).order_by(Genre.name))
    page = host.get("/?" + "&".join(f"member={u}" for u in users[:2])).get_data(as_text=True)
    assert 'id="party-button"' in page
    r = host.post("/party/start", data={"csrf_token": csrf(page),
                                        "member": [str(u) for u in users[:2]]})
    assert r.status_code == 303
    live_url = r.headers["Location"]
    pid = live_url.rsplit("/", 1)[1]
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = re.search(rf"pz_party_{pid}=([^;]+)", cookie).group(1)
    html = host.get(live_url).get_data(as_text=True)
    assert "Now playing" in html and 'id="end-button"' in html
    assert token not in html  # the token stays in the cookie
    join = re.search(r'id="join-link" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    qr = host.get(f"/party/{pid}/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and b"<svg" in qr.data

    phone = api_app.test_client()
    assert phone.get(f"/party/{pid}/qr.svg").status_code == 403
    form = phone.get(join).get_data(as_text=True)
    assert "I'm new here" in form or "I&#39;m new here" in form
    code = re.search(r'name="code" value="([^"]+)"', form).group(1)
    r = phone.post(f"/party/{pid}/join", data={"csrf_token": csrf(form), "code": code,
                                               "name": "<b>Ola</b>", "genre": [genre]})
    assert r.status_code == 303
    guest_page = phone.get(f"/party/{pid}").get_data(as_text=True)
    assert "&lt;b&gt;Ola&lt;/b&gt;" in guest_page and "<b>Ola</b>" not in guest_page
    assert 'id="skip-button"' in guest_page and 'id="end-button"' not in guest_page
    assert 'id="join-link"' not in guest_page  # guests see no join code

    # search, then join as a found user from a third phone
    third = api_app.test_client()
    found = third.get(join + f"&q={users[2]}").get_data(as_text=True)
    assert f'data-user-id="{users[2]}"' in found
    r = third.post(f"/party/{pid}/join", data={"csrf_token": csrf(found), "code": code,
                                               "user_id": str(users[2])})
    assert r.status_code == 303

    # a wrong code shows an error page, not the form
    assert phone.get(f"/party/{pid}/join?code=nope").status_code == 404
    # ended: the pages say so (410)
    assert host.delete(f"/parties/{pid}", headers={"Authorization": f"Bearer {token}"}) \
        .status_code == 204
    assert phone.get(f"/party/{pid}").status_code == 410
