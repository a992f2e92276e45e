"""What web pages declare in their signatures: the signed-in person (``User``) and, for every form that
changes something, the same person with the CSRF token checked (``FormUser``).

A page request counts against the account's ``requests`` bucket, as an API call does, so a flood from a
browser is limited like one from a script; static files are not counted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..api.deps import Services, get_services
from ..api.domain.common import Caller
from ..errors import InsufficientScopeError
from .session import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, WebUser, check_csrf, current_user

ServicesDep = Annotated[Services, Depends(get_services)]


def _user(request: Request, svc: ServicesDep) -> WebUser:
    user = current_user(svc, request.cookies.get(SESSION_COOKIE))
    p = user.principal
    svc.limiter.hit(p.account_id, p.tier_name, p.tier, "requests", prior=[])
    request.state.account_id = p.account_id
    request.state.web_user = user  # for the error pages
    return user


async def _form_user(request: Request, user: Annotated[WebUser, Depends(_user)]) -> WebUser:
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        form = await request.form()  # cached: the route's own Form/File parameters read the same parse
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    check_csrf(user.csrf_token, presented)
    return user


User = Annotated[WebUser, Depends(_user)]
FormUser = Annotated[WebUser, Depends(_form_user)]


def need_scope(user: WebUser, scope: str) -> None:
    """Pages act with the session key's scopes, as the API would (403 ``insufficient_scope``)."""
    if scope not in user.principal.scopes:
        raise InsufficientScopeError(
            f"the API key you signed in with may not do this: it needs the {scope!r} scope (sign in with a key "
            f"created with `tastemaker keys create --scope {scope}`)", scopes={scope},
        )


def caller(request: Request, user: WebUser) -> Caller:
    """The domain layer's view of the person (the same one the JSON API passes)."""
    return Caller.of(request, user.principal)

