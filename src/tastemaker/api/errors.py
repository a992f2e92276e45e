"""Errors only the service raises, in the core hierarchy so the API's one handler maps them all.

::

    TastemakerError (tastemaker.errors)
    ├── InputError                                 422 invalid_input
    │   ├── ConsentRequiredError                   400 consent_required
    │   ├── FilePartExpectedError                  400 file_part_expected  (a text part where a file goes)
    │   ├── RequestTooLargeError                   413 request_too_large
    │   ├── UnsupportedMediaTypeError              415 unsupported_media_type
    │   ├── IdempotencyKeyReusedError              422 idempotency_key_reused
    │   └── MalformedBodyError                     422 malformed_body
    ├── AuthError                                  401 (base, never raised itself)
    │   ├── MissingApiKeyError                     401 missing_api_key
    │   ├── InvalidApiKeyError                     401 invalid_api_key
    │   └── RevokedApiKeyError                     401 api_key_revoked
    ├── InsufficientScopeError                     403 insufficient_scope  (WWW-Authenticate names the scope)
    ├── NotFoundError                              404 not_found
    ├── IdempotencyInProgressError                 409 idempotency_key_in_use
    ├── ConflictError                              409 conflict            (Retry-After)
    ├── RateLimitedError                           429 rate_limited        (Retry-After)
    │   ├── QuotaExceededError                     429 quota_exceeded      (Retry-After: next period)
    │   ├── TooManyJobsError                       429 too_many_jobs
    │   └── VerifyBusyError                        429 verify_busy         (the account's verifies in flight)
    ├── ServiceUnavailableError                    503 service_unavailable (Retry-After)
    │   ├── QueueFullError                         503 queue_full
    │   ├── RateLimiterUnavailableError            503 rate_limiter_unavailable
    │   └── VerifyQueueFullError                   503 verify_queue_full
    ├── ForwardedError                             (a core error raised in a worker process; keeps its code)
    ├── StoreError                                 500 store_error
    │   └── BlobMissingError                       500 blob_missing
    └── ConfigurationError              exit 78    500 configuration_error
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

from ..errors import InputError, TastemakerError


class ServiceError(TastemakerError):
    """Base for service errors that carry response headers (Retry-After, WWW-Authenticate)."""

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})


class ConsentRequiredError(InputError):
    code = "consent_required"
    http_status = 400


class FilePartExpectedError(InputError):
    """A multipart part that must be a file (``images``, ``selfie``, ``image``) came as a text field: a part
    without a ``filename`` in its ``Content-Disposition`` (some clients drop an empty one)."""

    code = "file_part_expected"
    http_status = 400

    def __init__(self, field: str) -> None:
        super().__init__(
            f"{field}: send a file part, with a file name — Content-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"photo.jpg\" (curl: -F {field}=@photo.jpg); this one came as a text field"
        )
        self.field = field


class RequestTooLargeError(InputError):
    code = "request_too_large"
    http_status = 413


class UnsupportedMediaTypeError(InputError):
    code = "unsupported_media_type"
    http_status = 415


class IdempotencyKeyReusedError(InputError):
    code = "idempotency_key_reused"


class MalformedBodyError(InputError):
    """A body the framework parses (form, JSON model) that is not what its content type says."""

    code = "malformed_body"


class AuthError(ServiceError):
    code = "unauthorized"
    http_status = 401

    def __init__(self, message: str, *, account_id: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="tastemaker"'})
        self.account_id = account_id  # known for a revoked key (for the audit trail, never shown)


class InsufficientScopeError(ServiceError):
    """The key is valid but was not given the scope this endpoint needs (RFC 6750 ``insufficient_scope``)."""

    code = "insufficient_scope"
    http_status = 403

    def __init__(self, message: str, *, scopes: frozenset[str] | set[str]) -> None:
        need = " ".join(sorted(scopes))
        challenge = f'Bearer realm="tastemaker", error="insufficient_scope", scope="{need}"'
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class MissingApiKeyError(AuthError):
    code = "missing_api_key"


class InvalidApiKeyError(AuthError):
    code = "invalid_api_key"


class RevokedApiKeyError(AuthError):
    code = "api_key_revoked"


class NotFoundError(ServiceError):
    code = "not_found"
    http_status = 404


class IdempotencyInProgressError(ServiceError):
    code = "idempotency_key_in_use"
    http_status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class ConflictError(ServiceError):
    """The object changed under the request (e.g. pins added while feedback was applied); retry it."""

    code = "conflict"
    http_status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


def retry_after(seconds: float) -> str:
    """Retry-After is whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class RateLimitedError(ServiceError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: float, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={**(headers or {}), "Retry-After": retry_after(retry_after_s)})
        self.retry_after_s = retry_after_s


class QuotaExceededError(RateLimitedError):
    code = "quota_exceeded"


class TooManyJobsError(RateLimitedError):
    code = "too_many_jobs"


class VerifyBusyError(RateLimitedError):
    """The account already has as many provenance checks running as it may (``verify_per_account``)."""

    code = "verify_busy"


class ServiceUnavailableError(ServiceError):
    code = "service_unavailable"
    http_status = 503

    def __init__(self, message: str, *, retry_after_s: float = 5.0) -> None:
        super().__init__(message, headers={"Retry-After": retry_after(retry_after_s)})


class QueueFullError(ServiceUnavailableError):
    code = "queue_full"


class RateLimiterUnavailableError(ServiceUnavailableError):
    code = "rate_limiter_unavailable"


class VerifyQueueFullError(ServiceUnavailableError):
    code = "verify_queue_full"


class ForwardedError(TastemakerError):
    """A Tastemaker error raised in a worker process, carried back as (class name, code, status, message).

    Worker processes never pickle exception objects (some take extra constructor arguments); they
    send these four values and the API answers exactly as if the original had been raised here.
    """

    def __init__(self, name: str, code: str, http_status: int, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.code = code
        self.http_status = http_status

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "error": self.name}


class StoreError(TastemakerError):
    code = "store_error"


class BlobMissingError(StoreError):
    code = "blob_missing"


class ConfigurationError(TastemakerError):
    code = "configuration_error"
    exit_code = 78  # EX_CONFIG


def error_response(
    request_id: str | None, exc: TastemakerError, details: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """The one translation from a Tastemaker error to an HTTP response (the app's handlers and the
    middleware that refuses requests before they reach a route both use it)."""
    body: dict[str, Any] = {**exc.to_dict(), "request_id": request_id}
    if details:
        body["details"] = details
    headers = dict(getattr(exc, "headers", {}) or {})
    wait = getattr(exc, "retry_after_s", None)  # core errors that know when to retry (a spent privacy budget)
    if wait is not None and "Retry-After" not in headers:
        headers["Retry-After"] = retry_after(wait)
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


__all__ = [
    "AuthError",
    "BlobMissingError",
    "ConfigurationError",
    "ConflictError",
    "ConsentRequiredError",
    "FilePartExpectedError",
    "ForwardedError",
    "IdempotencyInProgressError",
    "IdempotencyKeyReusedError",
    "InsufficientScopeError",
    "InvalidApiKeyError",
    "MalformedBodyError",
    "MissingApiKeyError",
    "NotFoundError",
    "QueueFullError",
    "QuotaExceededError",
    "RateLimitedError",
    "RateLimiterUnavailableError",
    "RequestTooLargeError",
    "RevokedApiKeyError",
    "ServiceError",
    "ServiceUnavailableError",
    "StoreError",
    "TooManyJobsError",
    "UnsupportedMediaTypeError",
    "VerifyBusyError",
    "VerifyQueueFullError",
    "error_response",
    "retry_after",
]
