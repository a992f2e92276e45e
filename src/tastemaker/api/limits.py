"""Per-tier rate limits with the ``limits`` library (moving windows; memory storage, or Redis by URL).

Callers without a valid key are counted per client address (``unauthenticated_per_minute``, see
:meth:`RateLimiter.hit_client`). Each account has four per-minute buckets: ``requests`` (every
authenticated call), ``styleembed``
(taste extraction — bulk extraction is the scraping risk, so its limit is much stricter) and ``verify``
(provenance checks: CPU-bound, and open to any tier, so they get their own budget), and ``records``
(``POST /v1/records``: marking, signing and logging an output rendered on a device). Monthly image
quotas are not here: they must survive restarts, so they live in the database (the store's usage counters).

Responses carry the IETF draft headers (``RateLimit-Policy: "requests";q=60;w=60`` and
``RateLimit: "requests";r=59;t=60``) plus the common ``X-RateLimit-Limit/-Remaining/-Reset`` for the
tightest bucket (``X-RateLimit-Reset`` is a Unix time, as GitHub's is).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from ..errors import ConfigurationError, RateLimitedError, RateLimiterUnavailableError
from .settings import TierLimits

WINDOW_S = 60
BUCKETS = ("requests", "styleembed", "verify", "records")
_PER_MINUTE = {"requests": "requests_per_minute", "styleembed": "styleembed_per_minute", "verify": "verify_per_minute",
               "records": "records_per_minute"}


@dataclass(frozen=True)
class LimitState:
    """Where one bucket stands after this request."""

    bucket: str
    limit: int
    remaining: int
    reset_at: float  # Unix time when a slot frees up
    window_s: int = WINDOW_S

    @property
    def reset_in(self) -> int:
        return max(0, math.ceil(self.reset_at - time.time()))


def limit_headers(states: list[LimitState]) -> dict[str, str]:
    """RateLimit / RateLimit-Policy (structured fields) and X-RateLimit-* for the tightest bucket."""
    if not states:
        return {}
    tight = min(states, key=lambda st: (st.remaining / st.limit, st.remaining))
    return {
        "RateLimit-Policy": ", ".join(f'"{st.bucket}";q={st.limit};w={st.window_s}' for st in states),
        "RateLimit": ", ".join(f'"{st.bucket}";r={st.remaining};t={st.reset_in}' for st in states),
        "X-RateLimit-Limit": str(tight.limit),
        "X-RateLimit-Remaining": str(tight.remaining),
        "X-RateLimit-Reset": str(math.ceil(tight.reset_at)),
        "X-RateLimit-Resource": tight.bucket,
    }


class RateLimiter:
    """Counts hits per (account, bucket) against its tier's limit."""

    def __init__(self, storage_url: str) -> None:
        try:
            self.storage = storage_from_string(storage_url)
        except Exception as exc:  # limits.errors.ConfigurationError, missing redis client...
            raise ConfigurationError(f"rate-limit storage {storage_url!r} cannot be used: {exc}") from exc
        self.limiter = MovingWindowRateLimiter(self.storage)

    @staticmethod
    def item(tier: TierLimits, bucket: str) -> RateLimitItem:
        return RateLimitItemPerMinute(int(getattr(tier, _PER_MINUTE[bucket])))

    def hit(
        self, account_id: str, tier_name: str, tier: TierLimits, bucket: str, *, prior: list[LimitState]
    ) -> LimitState:
        """Count one hit; raise 429 (with every header so far) if the bucket is empty."""
        item = self.item(tier, bucket)
        try:
            allowed = self.limiter.hit(item, account_id, bucket)
            reset_at, remaining = self.limiter.get_window_stats(item, account_id, bucket)
        except Exception as exc:  # storage down (Redis): fail closed, but as a clean 503
            raise RateLimiterUnavailableError(
                f"the rate limiter's storage is unavailable ({type(exc).__name__})"
            ) from exc
        state = LimitState(bucket=bucket, limit=item.amount, remaining=max(0, remaining), reset_at=reset_at)
        if not allowed:
            wait = max(1.0, reset_at - time.time())
            raise RateLimitedError(
                f"rate limit exceeded: {item.amount} {bucket} per minute for the {tier_name!r} tier; "
                f"retry in {math.ceil(wait)} s",
                retry_after_s=wait,
                headers=limit_headers([*prior, state]),
            )
        return state

    def hit_client(self, address: str, per_minute: int) -> RateLimitedError | None:
        """Count one request without a valid key from ``address``; the 429 to answer instead of the 401 once
        the address has had ``per_minute`` of them in the last minute (None while it has not)."""
        item = RateLimitItemPerMinute(per_minute)
        try:
            allowed = self.limiter.hit(item, "unauthenticated", address)
            reset_at, _ = self.limiter.get_window_stats(item, "unauthenticated", address)
        except Exception as exc:
            raise RateLimiterUnavailableError(
                f"the rate limiter's storage is unavailable ({type(exc).__name__})"
            ) from exc
        if allowed:
            return None
        wait = max(1.0, reset_at - time.time())
        return RateLimitedError(
            f"too many requests without a valid API key from this address: {per_minute} per minute; "
            f"retry in {math.ceil(wait)} s with a valid key",
            retry_after_s=wait,
        )

    def peek(self, account_id: str, tier: TierLimits, bucket: str) -> LimitState:
        item = self.item(tier, bucket)
        try:
            reset_at, remaining = self.limiter.get_window_stats(item, account_id, bucket)
        except Exception as exc:
            raise RateLimiterUnavailableError(
                f"the rate limiter's storage is unavailable ({type(exc).__name__})"
            ) from exc
        return LimitState(bucket=bucket, limit=item.amount, remaining=max(0, remaining), reset_at=reset_at)

    def forget(self, account_id: str, tier: TierLimits) -> None:
        """Drop an account's counters in every bucket (``DELETE /v1/me``); best effort."""
        for bucket in BUCKETS:
            try:
                self.limiter.clear(self.item(tier, bucket), account_id, bucket)
            except Exception:  # storage down: the counters expire with their window anyway
                pass

    def reset(self) -> None:
        self.storage.reset()
