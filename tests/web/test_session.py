"""Signing in and out of the web app, CSRF, the session cookie, and the security headers on every page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tastemaker.web.mount import CSP
from tastemaker.web.session import SESSION_COOKIE, token_hash

from .conftest import Site, csrf_of


def _signin_token(site: Site) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', site.client.get("/signin").text)
    assert m
    return m.group(1)


def test_signed_out_pages_redirect_to_sign_in_and_come_back(site: Site) -> None:
    r = site.client.get("/boards?x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=/boards?x=1"
    token = _signin_token(site)
    r = site.client.post("/signin", data={"api_key": site.new_key(), "csrf_token": token, "next": "/boards?x=1"},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/boards?x=1"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_next_never_leaves_the_site(site: Site, target: str) -> None:
    token = _signin_token(site)
    r = site.client.post("/signin", data={"api_key": site.new_key(), "csrf_token": token, "next": target},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/boards"


def test_session_cookie_flags_and_the_key_stays_on_the_server(site: Site) -> None:
    key = site.new_key()
    token = _signin_token(site)
    r = site.client.post("/signin", data={"api_key": key, "csrf_token": token}, follow_redirects=False)
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= flags and "samesite=lax" in cookie.lower()
    value = cookie.split(";")[0].split("=", 1)[1]
    assert key not in cookie and value != key
    with site.services.store.session() as s:  # the store keeps the token's hash, not the token
        session = s.find_web_session(token_hash(value))
        assert session is not None and session.csrf_token != value
    page = site.client.get("/boards").text
    assert key not in page and value not in page


def test_wrong_key_is_a_message_on_the_form(site: Site) -> None:
    token = _signin_token(site)
    r = site.client.post("/signin", data={"api_key": "tm_" + "x" * 33, "csrf_token": token})
    assert r.status_code == 401 and 'role="alert"' in r.text and "API key" in r.text
    assert not r.text.lstrip().startswith("{")


def test_sign_in_without_the_forms_token_is_refused(site: Site) -> None:
    site.client.get("/signin")
    r = site.client.post("/signin", data={"api_key": site.new_key(), "csrf_token": "forged"})
    assert r.status_code == 403 and "did not come from this site" in r.text


def test_forms_without_csrf_token_are_refused(site: Site) -> None:
    csrf = site.sign_in()
    assert site.client.post("/signout", data={}).status_code == 403
    assert site.client.post("/signout", data={"csrf_token": "x" * len(csrf)}).status_code == 403
    assert site.client.get("/boards").status_code == 200  # still signed in
    r = site.client.post("/signout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert r.status_code == 303


def test_sign_out_ends_the_session_on_the_server(site: Site) -> None:
    csrf = site.sign_in()
    old = site.client.cookies.get(SESSION_COOKIE)
    r = site.client.post("/signout", data={"csrf_token": csrf})
    assert r.status_code == 200 and "You are signed out" in r.text
    site.client.cookies.set(SESSION_COOKIE, old or "")  # a copied cookie does not come back to life
    assert site.client.get("/boards", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_its_sessions(site: Site) -> None:
    key = site.new_key()
    site.sign_in(key)
    with site.services.store.session() as s:
        from tastemaker.api.keys import key_hash
        from tastemaker.store.records import utcnow

        stored = s.find_key(key_hash(key))
        assert stored is not None
        s.revoke_key(stored, utcnow())
        s.commit()
    r = site.client.get("/boards", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")


def test_security_headers_on_pages_not_on_the_api(site: Site) -> None:
    for path in ("/signin", "/static/app.css", "/no-such-page"):
        h = site.client.get(path).headers
        assert h["content-security-policy"] == CSP, path
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
    assert "content-security-policy" not in site.client.get("/v1/usage").headers


def test_pages_have_no_inline_scripts(site: Site) -> None:
    site.sign_in()
    for path in ("/signin", "/boards", "/generate", "/gallery", "/verify", "/account"):
        html = site.client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "javascript:" not in html, path


def test_unknown_page_is_a_page_and_unknown_api_path_is_json(site: Site) -> None:
    page = site.client.get("/nowhere")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    api = site.client.get("/v1/nowhere", headers={"Authorization": "Bearer x"})
    assert api.headers["content-type"].startswith("application/json")


def test_first_page_is_light(site: Site) -> None:
    """The sign-in page and everything it loads: well under the 200 KB budget (uncompressed here)."""
    html = site.client.get("/signin").text
    assets = re.findall(r'(?:src|href)="(/static/[^"?]+)', html)
    total = len(html.encode()) + sum(len(site.client.get(a).content) for a in assets)
    assert assets and total < 200_000, total


def test_sign_in_is_rate_limited_per_address(make_site: Callable[..., Site]) -> None:
    site = make_site(unauthenticated_per_minute=3)
    statuses: list[int] = []
    for _ in range(5):
        token = _signin_token(site)
        statuses.append(site.client.post("/signin", data={"api_key": "tm_wrong", "csrf_token": token}).status_code)
    assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429
    last: Any = site.client.post("/signin", data={"api_key": "tm_wrong", "csrf_token": _signin_token(site)})
    assert "Try again in" in last.text


def test_csrf_token_is_per_session(site: Site) -> None:
    a = site.sign_in()
    from fastapi.testclient import TestClient

    other = TestClient(site.client.app)
    b = site.sign_in(client=other)
    assert a != b and csrf_of(other.get("/boards").text) == b


def test_an_oversized_upload_to_a_page_is_a_page_not_json(make_site: Callable[..., Site]) -> None:
    site = make_site(max_request_bytes=100_000)
    csrf = site.sign_in()
    r = site.client.post("/boards", data={"csrf_token": csrf, "name": "big"},
                         files=[("images", ("big.jpg", b"\xff" * 200_000, "image/jpeg"))])
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    assert "the limit is 0 MB" not in r.text and "send fewer or smaller files" in r.text
    assert r.headers["x-frame-options"] == "DENY"
    api = site.client.post("/v1/boards", content=b"x" * 200_000, headers={"Content-Type": "application/json"})
    assert api.status_code == 413 and api.headers["content-type"].startswith("application/json")
