"""Forms as a browser posts them: the CSRF token read from the page, the admin login."""
from __future__ import annotations

import re

ADMIN_PASSWORD = "correct horse battery staple"


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client, username="admin", password=ADMIN_PASSWORD, next_url=None):
    page = client.get("/admin/login").get_data(as_text=True)
    url = "/admin/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"csrf_token": csrf_token(page), "username": username,
                                  "password": password})
