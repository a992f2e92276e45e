"""``GET /healthz``: liveness and readiness, for load balancers and orchestrators (no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ... import __version__
from ..deps import ServicesDep
from ..schemas import HealthOut

router = APIRouter(tags=["service"])


@router.get(
    "/healthz",
    response_model=HealthOut,
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
