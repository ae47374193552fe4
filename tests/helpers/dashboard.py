"""Driving the dashboard's forms over HTTP: the sign-in form and the CSRF token of a page."""

from __future__ import annotations

import re
from typing import Any

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: Any, token: str, *, base: str = "/admin") -> str:
    """Sign in through the form, as a browser does (a Starlette TestClient or an httpx
    client); returns the session's CSRF token."""
    form = client.get(f"{base}/sign-in")
    response = client.post(
        f"{base}/sign-in",
        data={"token": token, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get(f"{base}/")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)
