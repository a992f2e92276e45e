"""``GET /v1/usage`` (this period's counts against the tier) and ``GET /healthz`` (no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ... import __version__
from ...store import repo
from ...store.models import utcnow
from ..deps import CurrentAccount, ServicesDep, SessionDep
from ..limits import BUCKETS
from ..schemas import Counter, HealthOut, UsageOut, WindowLimit
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
