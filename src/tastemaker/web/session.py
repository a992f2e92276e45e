"""Signing in to the web app: server-side sessions, the cookie that names one, and CSRF tokens.

A person signs in with an API key. The key is checked exactly as the JSON API checks it
(:func:`tastemaker.api.deps.resolve_key`) and then forgotten: the browser gets a random session token in an
``httpOnly``, ``SameSite=Lax`` cookie (``Secure`` over HTTPS), and the store keeps only the token's SHA-256
with the key's id. So the key never reaches the page, its script or ``localStorage``; a session acts with
its key's scopes and ends when the key is revoked, the account deleted, the person signs out, or it expires.

Every form carries the session's CSRF token (and htmx sends it as ``X-CSRF-Token``); a state-changing
request without the right one is refused. The sign-in form itself, before any session exists, is protected
by a double-submit token: a random cookie that the form must repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from ..api.deps import Principal, Services, principal_of, resolve_key
from ..errors import AuthError, CsrfError, SessionExpiredError
from ..store.records import WebSession, utcnow

#: the session cookie (its value is the random token; the store has only the token's hash)
SESSION_COOKIE = "tm_session"
#: the sign-in form's double-submit cookie (no session exists yet to hold a token)
SIGNIN_COOKIE = "tm_signin"
#: the form field and the header that carry the CSRF token
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: how long a session lasts (the person signs in again after)
SESSION_TTL = timedelta(days=7)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class WebUser:
    """The signed-in person: the principal the session acts as, and the session (for its CSRF token)."""

    principal: Principal
    session: WebSession

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def sign_in(svc: Services, raw_key: str) -> tuple[str, WebSession]:
    """Check an API key as the API does and open a session for it: (the cookie's token, the session)."""
    principal = resolve_key(svc, raw_key.strip())
    return open_session(svc, principal.account_id, principal.key_id)


def open_session(svc: Services, account_id: str, key_id: str) -> tuple[str, WebSession]:
    """A new session for ``key_id`` (the one place a session token is made)."""
    token = secrets.token_urlsafe(32)
    with svc.store.session() as s:
        session = s.create_web_session(account_id, key_id, token_hash=token_hash(token),
                                       csrf_token=secrets.token_urlsafe(32), expires_at=utcnow() + SESSION_TTL)
        s.commit()
    return token, session


def current_user(svc: Services, token: str | None) -> WebUser:
    """The person a session cookie names, or :class:`SessionExpiredError` (no cookie, unknown, expired, key
    revoked or account deleted)."""
    if not token:
        raise SessionExpiredError("sign in to continue")
    with svc.store.session() as s:
        session = s.find_web_session(token_hash(token))
        if session is None:
            raise SessionExpiredError("your session has ended; sign in again")
        if session.expires_at <= utcnow():
            s.delete_web_session(session.id)
            s.commit()
            raise SessionExpiredError("your session expired; sign in again")
        key = s.get_key(session.key_id)
        if key is None or key.revoked_at is not None:
            s.delete_web_session(session.id)
            s.commit()
            raise SessionExpiredError("the API key this session used was revoked; sign in with another key")
    return WebUser(principal_of(svc, key), session)


def sign_out(svc: Services, user: WebUser) -> None:
    with svc.store.session() as s:
        s.delete_web_session(user.session.id)
        s.commit()


def check_csrf(expected: str, presented: str | None) -> None:
    """Refuse a state-changing request whose CSRF token is missing or wrong (constant-time compare)."""
    if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise CsrfError("this form is out of date or did not come from this site; reload the page and try again")


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


__all__ = [
    "CSRF_FIELD", "CSRF_HEADER", "SESSION_COOKIE", "SESSION_TTL", "SIGNIN_COOKIE", "AuthError", "WebUser",
    "check_csrf", "current_user", "new_signin_token", "open_session", "sign_in", "sign_out", "token_hash",
]
