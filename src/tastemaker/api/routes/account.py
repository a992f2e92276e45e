"""``GET /v1/usage`` (this period's counts against the tier), ``DELETE /v1/me`` (forget the account) and
``GET /healthz`` (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ... import __version__
from ..deps import CurrentAccount, FullAccess, ServicesDep, SessionDep
from ..domain import account
from ..domain.common import Caller
from ..schemas import AccountDeletedOut, HealthOut, UsageOut
from .common import AUTH_ERRORS

router = APIRouter()


@router.get(
    "/v1/usage",
    response_model=UsageOut,
    tags=["account"],
    responses=AUTH_ERRORS,
    summary="This month's usage against the account's tier",
)
def usage(svc: ServicesDep, session: SessionDep, principal: CurrentAccount) -> UsageOut:
    return account.usage(svc, session, principal)


@router.delete(
    "/v1/me",
    response_model=AccountDeletedOut,
    tags=["account"],
    responses=AUTH_ERRORS,
    summary="Delete this account and every stored trace of it (irreversible)",
    description=(
        "Removes the account's boards and pins, taste profiles and their version history, generations and "
        "their images, privacy ledgers, idempotency records, usage counters, rate-limit counters and API keys "
        "(every key of the account stops working at once), and every stored image no other account refers to "
        "(images are stored by content, so one another account also uploaded stays for them). Kept: the "
        "hash-chained audit log (ids and hashes only; an `account.deleted` entry is added) and the provenance "
        "transparency log (hashes and the now-orphaned account id; it is append-only so that every other "
        "image stays verifiable). A generation still running finishes into nothing: its result is dropped. "
        "Needs a key with every scope."
    ),
)
def delete_me(request: Request, svc: ServicesDep, session: SessionDep, principal: FullAccess) -> AccountDeletedOut:
    return account.delete_account(svc, session, Caller.of(request, principal))


@router.get(
    "/healthz",
    response_model=HealthOut,
    tags=["service"],
    summary="Liveness and readiness",
    responses={503: {"model": HealthOut, "description": "Database unreachable or not accepting jobs"}},
)
def healthz(svc: ServicesDep) -> JSONResponse:
    try:
        svc.store.ping()
        db = "ok"
    except Exception:
        db = "error"
    jobs = svc.runner.stats()
    ok = db == "ok" and svc.runner.accepting
    body = HealthOut(status="ok" if ok else "degraded", version=__version__, database=db, jobs=jobs)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
