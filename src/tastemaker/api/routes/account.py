"""``GET /v1/usage`` (this period's counts against the tier) and ``DELETE /v1/me`` (forget the account)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import CurrentAccount, FullAccess, ServicesDep, SessionDep
from ..domain import account
from ..domain.common import Caller
from ..schemas import AccountDeletedOut, UsageOut
from .common import AUTH_ERRORS

router = APIRouter(tags=["account"], responses=AUTH_ERRORS)


@router.get(
    "/v1/usage",
    response_model=UsageOut,
    summary="This month's usage against the account's tier",
)
def usage(svc: ServicesDep, session: SessionDep, principal: CurrentAccount) -> UsageOut:
    return account.usage(svc, session, principal)


@router.delete(
    "/v1/me",
    response_model=AccountDeletedOut,
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
