"""``GET /v1/usage`` (this period's counts against the tier), ``DELETE /v1/me`` (forget the account) and
``GET /healthz`` (no auth)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ... import __version__
from ...audit import ACCOUNT_DELETED
from ...store import repo
from ...store.models import utcnow
from ..deps import CurrentAccount, FullAccess, ServicesDep, SessionDep, request_id
from ..limits import BUCKETS
from ..profiles import forget_board_files
from ..schemas import AccountDeletedOut, Counter, HealthOut, UsageOut, WindowLimit
from .common import AUTH_ERRORS

log = logging.getLogger("tastemaker.api")

router = APIRouter()


@router.get(
    "/v1/usage",
    response_model=UsageOut,
    tags=["account"],
    responses=AUTH_ERRORS,
    summary="This month's usage against the account's tier",
)
def usage(svc: ServicesDep, session: SessionDep, principal: CurrentAccount) -> UsageOut:
    period = repo.period_of(utcnow())
    start, end = repo.period_bounds(period)
    u = repo.get_usage(session, principal.account_id, period)
    tier = principal.tier
    active = repo.count_active_jobs(session, principal.account_id)
    windows = {}
    for bucket in BUCKETS:
        st = svc.limiter.peek(principal.account_id, tier, bucket)
        windows[bucket] = WindowLimit(
            limit=st.limit, remaining=st.remaining, window_seconds=st.window_s, reset_in_seconds=st.reset_in
        )
    return UsageOut(
        account_id=principal.account_id,
        tier=principal.tier_name,
        period=period,
        period_start=start,
        period_end=end,
        images=Counter(used=u.images, limit=tier.images_per_month, remaining=max(0, tier.images_per_month - u.images)),
        generations=u.generations,
        styleembed_calls=u.styleembed,
        active_jobs=Counter(used=active, limit=tier.max_active_jobs, remaining=max(0, tier.max_active_jobs - active)),
        rate_limits=windows,
    )


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
    account_id = principal.account_id
    blobs = svc.store.blobs
    with blobs.lock:  # no upload or finishing job can commit a reference to a blob between the check and the delete
        try:
            gone = repo.delete_account(session, account_id)
            orphans = repo.unreferenced(session, gone.blob_candidates)
            counts = {**gone.counts, "blobs": len(orphans)}
            svc.audit.append(
                session,
                ACCOUNT_DELETED,
                account_id=account_id,
                objects={"account": account_id},
                request_id=request_id(request),
                detail=counts,
            )
            session.commit()
        except BaseException:
            session.rollback()
            raise
        for sha in orphans:
            blobs.delete(sha)
    ledgers = 0
    for board_id in gone.board_ids:  # the boards' differential-privacy accountants (files in the data dir)
        try:
            ledgers += forget_board_files(svc.settings.data_dir, board_id)
        except OSError:
            log.exception("could not remove the privacy ledger of board %s of a deleted account", board_id)
    svc.limiter.forget(account_id, principal.tier)
    kept = repo.audit_entries_of(session, account_id)
    return AccountDeletedOut(
        account_id=account_id,
        deleted={**counts, "privacy_ledgers": ledgers},
        kept={"audit_entries": kept},
        note="the account is gone and its keys no longer authenticate; the audit log keeps ids and hashes only",
    )


@router.get(
    "/healthz",
    response_model=HealthOut,
    tags=["service"],
    summary="Liveness and readiness",
    responses={503: {"model": HealthOut, "description": "Database unreachable or not accepting jobs"}},
)
def healthz(svc: ServicesDep) -> JSONResponse:
    try:
        with svc.store.session() as s:
            s.execute(text("select 1"))
        db = "ok"
    except Exception:
        db = "error"
    jobs = svc.runner.stats()
    ok = db == "ok" and svc.runner.accepting
    body = HealthOut(status="ok" if ok else "degraded", version=__version__, database=db, jobs=jobs)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
