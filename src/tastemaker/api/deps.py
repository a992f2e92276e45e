"""Dependencies every route declares in its signature: ``SessionDep`` (a store session), ``CurrentAccount``, the scoped
principals (``BoardsRead``, ``BoardsWrite``, ``GenerateAccount``, ``FullAccess``, and ``StyleEmbedAccount`` /
``VerifyAccount`` / ``RecordsAccount`` with that endpoint's own bucket), ``IdempotencyKey`` — and the middleware that
does the authentication they rely on.

**Authentication comes first, from the headers alone.** :class:`AuthGate` resolves the API key, counts the
request against the account's ``requests`` bucket and checks the route's scopes before any route — and so
before any body parser — runs: a keyless 100 MB upload is refused without reading a byte of it. Callers
without a valid key are rate-limited per client address (``unauthenticated_per_minute``), and every refusal
goes to the audit log aggregated per client and minute (:mod:`tastemaker.api.denials`). A route that takes
``CurrentAccount`` (or a scoped principal) cannot run without a valid, unrevoked key with the scopes it
declares and a free slot in the account's bucket.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..audit import AuditLog
from ..errors import (
    AuthError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InsufficientScopeError,
    InvalidApiKeyError,
    MissingApiKeyError,
    RateLimitedError,
    RevokedApiKeyError,
    TastemakerError,
)
from ..jobs import JobRunner, VerifyPool
from ..store import Store, StoreSession
from ..store.records import DONE, ApiKey, IdempotencyRecord
from .denials import DenialLog
from .groupcommit import GroupCommit
from .http_errors import error_response
from .keys import SCOPES, display_prefix, is_well_formed, key_hash, scope_set
from .limits import LimitState, RateLimiter, limit_headers
from .settings import ServerSettings, TierLimits

log = logging.getLogger("tastemaker.api")


@dataclass
class Services:
    """Everything a request may need, built once per app by ``create_app`` (no module globals)."""

    settings: ServerSettings
    store: Store
    audit: AuditLog
    limiter: RateLimiter
    runner: JobRunner
    denials: DenialLog
    verify_pool: VerifyPool
    #: the styleembed calls' usage counts and audit entries, group-committed (see :mod:`.groupcommit`)
    writes: GroupCommit


async def get_services(request: Request) -> Services:
    """The app's services. ``async`` (as the other dependencies that only read what is in memory): FastAPI runs a
    plain ``def`` dependency in the thread pool, a hop that cost more than the lookup on every request."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(svc: ServicesDep) -> Iterator[StoreSession]:
    """One store session per request; handlers commit what they mean to keep, the rest is rolled back."""
    with svc.store.session() as session:
        yield session


SessionDep = Annotated[StoreSession, Depends(get_session)]


def request_id(request: Request) -> str | None:
    rid: str | None = getattr(request.state, "request_id", None)
    return rid


def client_address(request: Request) -> str:
    """The caller's address (uvicorn puts a trusted proxy's ``X-Forwarded-For`` here)."""
    return request.client.host if request.client else "unknown"


# ------------------------------------------------------------------------------------------ auth + limits

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer tm_...`", scheme_name="ApiKeyBearer")
_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="or `X-API-Key: tm_...`", scheme_name="ApiKeyHeader"
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an account, its tier, the key it used and that key's scopes."""

    account_id: str
    account_name: str
    tier_name: str
    tier: TierLimits
    key_id: str
    scopes: frozenset[str] = frozenset(SCOPES)


def presented_key(headers: Headers) -> str:
    """The key from ``Authorization: Bearer`` or ``X-API-Key`` ("" when there is none)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key", "").strip()


def principal_of(svc: Services, key: ApiKey) -> Principal:
    """Who acts with ``key``: its account, that account's tier limits and the key's scopes."""
    account = key.account
    return Principal(account_id=account.id, account_name=account.name, tier_name=account.tier,
                     tier=svc.settings.tier(account.tier), key_id=key.id, scopes=scope_set(key.scopes))


def resolve_key(svc: Services, raw: str) -> Principal:
    """The principal of a presented key, or the auth error that says why there is none."""
    if not raw:
        raise MissingApiKeyError(
            "no API key: send `Authorization: Bearer tm_...` (create one with `tastemaker keys create`)"
        )
    if not is_well_formed(raw):
        raise InvalidApiKeyError(
            "the API key is malformed (a tm_ key is 36 characters with a built-in checksum): check for a typo "
            "or a truncated copy"
        )
    with svc.store.session() as s:
        key = s.find_key(key_hash(raw))
        if key is None:
            raise InvalidApiKeyError(f"API key {display_prefix(raw)}… is not known to this server")
        if key.revoked_at is not None:
            raise RevokedApiKeyError(
                f"API key {key.prefix}… was revoked on {key.revoked_at:%Y-%m-%d}; use another key",
                account_id=key.account_id,
            )
        principal = principal_of(svc, key)
        s.touch_key(key)
        s.commit()
    return principal


def admit_request(
    svc: Services, headers: Headers, *, address: str, method: str, path: str, request_id: str | None
) -> tuple[Principal, LimitState]:
    """Authenticate from the headers and count the request in the account's ``requests`` bucket.

    A caller without a valid key also spends one of its address's ``unauthenticated_per_minute``; past
    that it gets 429 instead of 401. Every refusal is noted in the aggregated audit trail.
    """
    try:
        principal = resolve_key(svc, presented_key(headers))
    except AuthError as exc:
        refusal: TastemakerError = exc
        settings = svc.settings
        blocked = svc.limiter.hit_client(address, settings.unauthenticated_per_minute)
        if blocked is not None:
            refusal = blocked
        svc.denials.note(
            address=address, outcome=refusal.code, account_id=exc.account_id, request_id=request_id,
            method=method, path=path,
        )
        raise refusal from None
    try:
        state = svc.limiter.hit(principal.account_id, principal.tier_name, principal.tier, "requests", prior=[])
    except RateLimitedError as exc:
        svc.denials.note(
            address=address, outcome=exc.code, account_id=principal.account_id, request_id=request_id,
            method=method, path=path, detail={"bucket": "requests"},
        )
        raise
    return principal, state


def _scope_refusal(missing: frozenset[str], method: str, path: str) -> InsufficientScopeError:
    return InsufficientScopeError(
        f"this API key may not call {method} {path}: it needs the scope(s) {', '.join(sorted(missing))} "
        f"(create a key with `tastemaker keys create --scope ...`)",
        scopes=missing,
    )


class AuthGate:
    """ASGI middleware: authentication, the request bucket and the route's scopes, from the headers alone,
    for every ``/v1/`` request — before the route, its dependencies or any body parser run."""

    def __init__(self, app: ASGIApp, services: Services, routes: list[Any]) -> None:
        self.app, self.svc, self.routes = app, services, routes
        self._needs: dict[int, frozenset[str]] = {}

    def required_scopes(self, scope: Scope) -> frozenset[str]:
        """The scopes the route matching this request declares (through :func:`require`), if any."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                needs = self._needs.get(id(route))
                if needs is None:
                    needs = self._needs[id(route)] = frozenset(_declared_scopes(getattr(route, "dependant", None)))
                return needs
        return frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        rid = state.get("request_id")
        address = (scope.get("client") or ("unknown", 0))[0]
        method, path = scope["method"], scope["path"]
        try:
            principal, limit = await run_in_threadpool(
                admit_request, self.svc, Headers(scope=scope), address=address, method=method, path=path,
                request_id=rid,
            )
            state["principal"], state["limits"] = principal, [limit]
            state["rate_headers"] = limit_headers([limit])
            missing = self.required_scopes(scope) - principal.scopes
            if missing:
                await run_in_threadpool(
                    self.svc.denials.note, address=address, outcome=InsufficientScopeError.code,
                    account_id=principal.account_id, request_id=rid, method=method, path=path,
                )
                raise _scope_refusal(missing, method, path)
        except TastemakerError as exc:
            await error_response(rid, exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _declared_scopes(dependant: Any) -> set[str]:
    found: set[str] = set()
    for dep in getattr(dependant, "dependencies", ()):
        found |= set(getattr(dep.call, "required_scopes", ()))
        found |= _declared_scopes(dep)
    return found


def _set_limits(request: Request, states: list[LimitState]) -> None:
    request.state.limits = states
    request.state.rate_headers = limit_headers(states)


async def authenticate(
    request: Request,
    svc: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    """The principal :class:`AuthGate` admitted (an app without the gate admits here, the same way, in a thread).

    ``bearer`` and ``header_key`` are declared so the OpenAPI document shows both ways to send a key.
    """
    admitted: Principal | None = getattr(request.state, "principal", None)
    if admitted is None:
        principal, state = await run_in_threadpool(
            admit_request, svc, request.headers, address=client_address(request), method=request.method,
            path=request.url.path, request_id=request_id(request),
        )
        _set_limits(request, [state])
    else:
        principal = admitted
    request.state.account_id = principal.account_id
    return principal


CurrentAccount = Annotated[Principal, Depends(authenticate)]


def require(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the principal, if its key has every one of ``scopes`` (403 ``insufficient_scope`` else).

    The scopes are also read by :class:`AuthGate` (``required_scopes``), which refuses before the body.
    """

    async def scoped(request: Request, principal: CurrentAccount) -> Principal:
        missing = frozenset(scopes) - principal.scopes
        if missing:
            raise _scope_refusal(missing, request.method, request.url.path)
        return principal

    scoped.required_scopes = frozenset(scopes)  # type: ignore[attr-defined]
    scoped.__name__ = "require_" + "_".join(sc.replace(":", "_") for sc in scopes)
    return scoped


BoardsRead = Annotated[Principal, Depends(require("boards:read"))]
BoardsWrite = Annotated[Principal, Depends(require("boards:write"))]
GenerateAccount = Annotated[Principal, Depends(require("generate"))]
#: Deleting the account: only a key with every scope may.
FullAccess = Annotated[Principal, Depends(require(*SCOPES))]


def _bucket_hit(request: Request, svc: Services, principal: Principal, bucket: str) -> Principal:
    """Count one hit in ``bucket`` on top of the request bucket (429 + headers of both when it is empty)."""
    prior: list[LimitState] = list(getattr(request.state, "limits", []))
    try:
        state = svc.limiter.hit(principal.account_id, principal.tier_name, principal.tier, bucket, prior=prior)
    except RateLimitedError as exc:
        svc.denials.note(
            address=client_address(request), outcome=exc.code, account_id=principal.account_id,
            request_id=request_id(request), method=request.method, path=request.url.path[:200],
            detail={"bucket": bucket},
        )
        raise
    _set_limits(request, [*prior, state])
    return principal


def styleembed_limit(
    request: Request, svc: ServicesDep, principal: Annotated[Principal, Depends(require("styleembed"))]
) -> Principal:
    """The stricter per-minute bucket for taste extraction, on top of the request bucket."""
    return _bucket_hit(request, svc, principal, "styleembed")


def verify_limit(
    request: Request, svc: ServicesDep, principal: Annotated[Principal, Depends(require("verify"))]
) -> Principal:
    """Provenance checks: any tier may verify, in a bucket of their own (CPU-bound, so bounded separately)."""
    return _bucket_hit(request, svc, principal, "verify")


def records_limit(
    request: Request, svc: ServicesDep, principal: Annotated[Principal, Depends(require("register"))]
) -> Principal:
    """Registering outputs rendered on a device (``POST /v1/records``): a scope and a bucket of their own, since
    each one costs a watermark, a signature and a log entry."""
    return _bucket_hit(request, svc, principal, "records")


StyleEmbedAccount = Annotated[Principal, Depends(styleembed_limit)]
VerifyAccount = Annotated[Principal, Depends(verify_limit)]
RecordsAccount = Annotated[Principal, Depends(records_limit)]


# ------------------------------------------------------------------------------------------ idempotency

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (e.g. a UUID). A retry with the same key and the same request gets the "
        "original result instead of doing the work twice; the same key with a different request is refused (422). "
        "Keys are remembered for 24 hours.",
    ),
]


def fingerprint(endpoint: str, fields: dict[str, Any]) -> str:
    """A stable digest of what a request asks for (file parts enter as their SHA-256)."""
    blob = json.dumps({"endpoint": endpoint, **fields}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Idempotency:
    """One request's use of an ``Idempotency-Key`` (a no-op when the header is absent)."""

    def __init__(self, svc: Services, principal: Principal, key: str | None, endpoint: str) -> None:
        self.svc, self.principal, self.key, self.endpoint = svc, principal, key, endpoint
        self.claimed = False

    def claim(self, s: StoreSession, fp: str) -> IdempotencyRecord | None:
        """None: go ahead (the key is ours now). A record: replay it. Raises on conflicts."""
        if self.key is None:
            return None
        ttl = timedelta(hours=self.svc.settings.idempotency_ttl_hours)
        existing = s.claim_idempotency_key(
            account_id=self.principal.account_id, key=self.key, endpoint=self.endpoint, fingerprint=fp, ttl=ttl
        )
        if existing is None:
            self.claimed = True
            return None
        if existing.endpoint != self.endpoint or existing.fingerprint != fp:
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {self.key!r} was already used for a different request ({existing.endpoint}); "
                "use a new key for a new request"
            )
        if existing.state != DONE:
            raise IdempotencyInProgressError(
                f"a request with Idempotency-Key {self.key!r} is still being processed; retry in a moment"
            )
        return existing

    def complete(
        self, s: StoreSession, *, status: int, body: dict[str, Any] | None, resource_id: str | None
    ) -> None:
        """Record the outcome inside the request's transaction."""
        if self.key is not None and self.claimed:
            s.finish_idempotency_key(self.principal.account_id, self.key, status=status, body=body,
                                     resource_id=resource_id)

    def abandon(self) -> None:
        """The request failed: forget the claim so the same key can be retried."""
        if self.key is None or not self.claimed:
            return
        with self.svc.store.session() as s:
            s.release_idempotency_key(self.principal.account_id, self.key)
            s.commit()
        self.claimed = False


__all__ = [
    "AuthGate",
    "BoardsRead",
    "BoardsWrite",
    "CurrentAccount",
    "FullAccess",
    "GenerateAccount",
    "IdempotencyKey",
    "Principal",
    "RecordsAccount",
    "Services",
    "ServicesDep",
    "SessionDep",
    "StyleEmbedAccount",
    "VerifyAccount",
]
