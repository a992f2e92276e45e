"""An account's usage against its tier, and forgetting an account."""

from __future__ import annotations

import logging

from ...audit import ACCOUNT_DELETED
from ...store import StoreSession
from ...store.records import period_bounds, period_of, utcnow
from ..deps import Principal, Services
from ..limits import BUCKETS
from ..schemas import AccountDeletedOut, Counter, UsageOut, WindowLimit
from .common import Caller
from .profiles import forget_board_files

log = logging.getLogger("tastemaker.api")


def usage(svc: Services, s: StoreSession, principal: Principal) -> UsageOut:
    """This month's counts, the active jobs and the rate-limit windows, each against the tier's limit."""
    period = period_of(utcnow())
    start, end = period_bounds(period)
    u = s.get_usage(principal.account_id, period)
    tier = principal.tier
    active = s.count_active_jobs(principal.account_id)
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


def delete_account(svc: Services, s: StoreSession, caller: Caller) -> AccountDeletedOut:
    """Delete the account's rows, the images no other account refers to, its privacy ledgers and its rate-limit
    counters; the audit log keeps ids and hashes (and gains an ``account.deleted`` entry)."""
    account_id = caller.account_id
    blobs = svc.store.blobs
    with blobs.lock:  # no upload or finishing job can commit a reference to a blob between the check and the delete
        try:
            gone = s.delete_account(account_id)
            orphans = s.unreferenced_blobs(gone.blob_candidates)
            counts = {**gone.counts, "blobs": len(orphans)}
            svc.audit.append(s, ACCOUNT_DELETED, account_id=account_id, objects={"account": account_id},
                             request_id=caller.request_id, detail=counts)
            s.commit()
        except BaseException:
            s.rollback()
            raise
        for sha in orphans:
            blobs.delete(sha)
    ledgers = 0
    for board_id in gone.board_ids:  # the boards' differential-privacy accountants (files in the data dir)
        try:
            ledgers += forget_board_files(svc.settings.data_dir, board_id)
        except OSError:
            log.exception("could not remove the privacy ledger of board %s of a deleted account", board_id)
    svc.limiter.forget(account_id, caller.principal.tier)
    kept = s.count_audit_entries(account_id)
    return AccountDeletedOut(
        account_id=account_id,
        deleted={**counts, "privacy_ledgers": ledgers},
        kept={"audit_entries": kept},
        note="the account is gone and its keys no longer authenticate; the audit log keeps ids and hashes only",
    )
