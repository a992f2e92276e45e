"""Who is asking, and the account-scoped loading every operation starts with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from ...audit import REQUEST_DENIED
from ...errors import NotFoundError, TastemakerError
from ...store import StoreSession
from ...store.records import Board, IdempotencyRecord, Job
from ..deps import Principal, Services, client_address, request_id


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request, and what the audit trail records about the request."""

    principal: Principal
    request_id: str | None
    method: str
    path: str
    address: str

    @classmethod
    def of(cls, request: Request, principal: Principal) -> Caller:
        return cls(principal, request_id(request), request.method, request.url.path, client_address(request))

    @property
    def account_id(self) -> str:
        return self.principal.account_id


@dataclass(frozen=True)
class Replay:
    """An ``Idempotency-Key`` seen before: the response it got (the route sends it again, marked replayed)."""

    body: Any
    status: int

    @classmethod
    def of(cls, record: IdempotencyRecord) -> Replay:
        return cls(record.response_body, record.response_status or 200)


def note_denied(svc: Services, caller: Caller, exc: TastemakerError, **detail: Any) -> None:
    """A refusal goes to the aggregated audit trail (one entry per client, minute and outcome)."""
    svc.denials.note(
        address=caller.address, outcome=exc.code, account_id=caller.account_id, request_id=caller.request_id,
        method=caller.method, path=caller.path, detail=detail or None,
    )


def _foreign(svc: Services, s: StoreSession, caller: Caller, kind: str, object_id: str) -> None:
    """A 404 is a 404; but when the id exists under another account, the probe goes in the audit log."""
    owner = s.owner_of(kind, object_id)
    if owner is not None and owner != caller.account_id:
        with svc.store.session() as s2:
            svc.audit.record(
                s2,
                REQUEST_DENIED,
                account_id=caller.account_id,
                objects={kind: object_id},
                request_id=caller.request_id,
                outcome="foreign_object",
                detail={"method": caller.method, "path": caller.path[:200]},
            )


def owned_board(svc: Services, s: StoreSession, caller: Caller, board_id: str, *, with_pins: bool = False) -> Board:
    """The caller's board (404 for anyone else's, and the probe audited)."""
    try:
        return s.get_board(caller.account_id, board_id, with_pins=with_pins)
    except NotFoundError:
        _foreign(svc, s, caller, "board", board_id)
        raise


def owned_job(svc: Services, s: StoreSession, caller: Caller, job_id: str) -> Job:
    """The caller's generation (404 for anyone else's, and the probe audited)."""
    try:
        return s.get_job(caller.account_id, job_id)
    except NotFoundError:
        _foreign(svc, s, caller, "generation", job_id)
        raise
