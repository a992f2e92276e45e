"""Dependencies every route declares in its signature: ``SessionDep``, ``CurrentAccount``,
``StyleEmbedAccount`` / ``VerifyAccount`` (auth + that endpoint's own bucket), ``IdempotencyKey``.

Authentication and rate limiting happen here, once: a route that takes ``CurrentAccount`` cannot run
without a valid, unrevoked key and a free slot in the account's ``requests`` bucket.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ..audit import REQUEST_DENIED, AuditLog
from ..store import Store, repo
from ..store.models import IdempotencyRecord
from ..worker import JobRunner
from .errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InvalidApiKeyError,
    MissingApiKeyError,
    RateLimitedError,
    RevokedApiKeyError,
)
from .keys import display_prefix, is_well_formed, key_hash
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


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(svc: ServicesDep) -> Iterator[Session]:
    """One session per request; handlers commit what they mean to keep, the rest is rolled back."""
    with svc.store.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def request_id(request: Request) -> str | None:
    rid: str | None = getattr(request.state, "request_id", None)
    return rid


# ------------------------------------------------------------------------------------------ auth + limits

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer tm_...`", scheme_name="ApiKeyBearer")
_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="or `X-API-Key: tm_...`", scheme_name="ApiKeyHeader"
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an account, its tier, and the key it used."""

    account_id: str
    account_name: str
    tier_name: str
    tier: TierLimits
    key_id: str


def _deny(
    svc: Services,
    request: Request,
    exc: Exception,
    *,
    account_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Audit a refused request (its own transaction: the refusal is recorded even though nothing else is)."""
    code = getattr(exc, "code", type(exc).__name__)
    try:
        with svc.store.session() as s:
            svc.audit.record(
                s,
                REQUEST_DENIED,
                account_id=account_id,
                request_id=request_id(request),
                outcome=code,
                detail={"method": request.method, "path": request.url.path[:200], **(detail or {})},
            )
    except Exception:  # the audit write must not turn a 401/429 into a 500; it is logged instead
        log.exception("could not audit a denied request")


def _set_limits(request: Request, states: list[LimitState]) -> None:
    request.state.limits = states
    request.state.rate_headers = limit_headers(states)


def authenticate(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    """Resolve the API key to an account, then count the request against the tier's per-minute limit."""
    raw = (bearer.credentials if bearer is not None else header_key) or ""
    raw = raw.strip()
    if not raw:
        exc: Exception = MissingApiKeyError(
            "no API key: send `Authorization: Bearer tm_...` (create one with `tastemaker keys create`)"
        )
        _deny(svc, request, exc)
        raise exc
    if not is_well_formed(raw):
        exc = InvalidApiKeyError(
            "the API key is malformed (a tm_ key is 36 characters with a built-in checksum): check for a typo "
            "or a truncated copy"
        )
        _deny(svc, request, exc)
        raise exc
    key = repo.find_key(session, key_hash(raw))
    if key is None:
        exc = InvalidApiKeyError(f"API key {display_prefix(raw)}… is not known to this server")
        _deny(svc, request, exc, detail={"key_prefix": display_prefix(raw)})
        raise exc
    if key.revoked_at is not None:
        exc = RevokedApiKeyError(f"API key {key.prefix}… was revoked on {key.revoked_at:%Y-%m-%d}; use another key")
        _deny(svc, request, exc, account_id=key.account_id, detail={"key": key.id})
        raise exc
    account = key.account
    principal = Principal(
        account_id=account.id,
        account_name=account.name,
        tier_name=account.tier,
        tier=svc.settings.tier(account.tier),
        key_id=key.id,
    )
    repo.touch_key(session, key)
    session.commit()
    request.state.account_id = account.id
    try:
        state = svc.limiter.hit(account.id, principal.tier_name, principal.tier, "requests", prior=[])
    except RateLimitedError as exc:
        _deny(svc, request, exc, account_id=account.id, detail={"bucket": "requests"})
        raise
    _set_limits(request, [state])
    return principal


CurrentAccount = Annotated[Principal, Depends(authenticate)]


def _bucket_hit(request: Request, svc: Services, principal: Principal, bucket: str) -> Principal:
    """Count one hit in ``bucket`` on top of the request bucket (429 + headers of both when it is empty)."""
    prior: list[LimitState] = list(getattr(request.state, "limits", []))
    try:
        state = svc.limiter.hit(principal.account_id, principal.tier_name, principal.tier, bucket, prior=prior)
    except RateLimitedError as exc:
        _deny(svc, request, exc, account_id=principal.account_id, detail={"bucket": bucket})
        raise
    _set_limits(request, [*prior, state])
    return principal


def styleembed_limit(request: Request, svc: ServicesDep, principal: CurrentAccount) -> Principal:
    """The stricter per-minute bucket for taste extraction, on top of the request bucket."""
    return _bucket_hit(request, svc, principal, "styleembed")


def verify_limit(request: Request, svc: ServicesDep, principal: CurrentAccount) -> Principal:
    """Provenance checks: any tier may verify, in a bucket of their own (CPU-bound, so bounded separately)."""
    return _bucket_hit(request, svc, principal, "verify")


StyleEmbedAccount = Annotated[Principal, Depends(styleembed_limit)]
VerifyAccount = Annotated[Principal, Depends(verify_limit)]


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

    def claim(self, s: Session, fp: str) -> IdempotencyRecord | None:
        """None: go ahead (the key is ours now). A record: replay it. Raises on conflicts."""
        if self.key is None:
            return None
        ttl = timedelta(hours=self.svc.settings.idempotency_ttl_hours)
        existing = repo.claim_idempotency_key(
            s, account_id=self.principal.account_id, key=self.key, endpoint=self.endpoint, fingerprint=fp, ttl=ttl
        )
        if existing is None:
            self.claimed = True
            return None
        if existing.endpoint != self.endpoint or existing.fingerprint != fp:
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {self.key!r} was already used for a different request ({existing.endpoint}); "
                "use a new key for a new request"
            )
        if existing.state != repo.DONE:
            raise IdempotencyInProgressError(
                f"a request with Idempotency-Key {self.key!r} is still being processed; retry in a moment"
            )
        return existing

    def complete(self, s: Session, *, status: int, body: dict[str, Any] | None, resource_id: str | None) -> None:
        """Record the outcome inside the request's transaction."""
        if self.key is not None and self.claimed:
            repo.finish_idempotency_key(
                s, self.principal.account_id, self.key, status=status, body=body, resource_id=resource_id
            )

    def abandon(self) -> None:
        """The request failed: forget the claim so the same key can be retried."""
        if self.key is None or not self.claimed:
            return
        with self.svc.store.session() as s:
            repo.release_idempotency_key(s, self.principal.account_id, self.key)
            s.commit()
        self.claimed = False


__all__ = [
    "CurrentAccount",
    "IdempotencyKey",
    "Principal",
    "Services",
    "ServicesDep",
    "SessionDep",
    "StyleEmbedAccount",
    "VerifyAccount",
]
