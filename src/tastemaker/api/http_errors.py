"""The one translation from a Tastemaker error to an HTTP response: status, headers, JSON body.

The hierarchy itself lives in :mod:`tastemaker.errors`; this edge decides what each class means in HTTP
(the CLI's edge, :mod:`tastemaker.cli.common`, decides exit codes). A class not in :data:`STATUS` takes its
nearest listed ancestor's status; an error forwarded from a worker process takes its original class's.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

from .. import errors as e

#: HTTP status by error class; subclasses inherit their nearest listed ancestor's.
STATUS: dict[type[e.TastemakerError], int] = {
    e.TastemakerError: 500,
    e.InputError: 422,
    e.UnsupportedImageError: 415,
    e.ImageTooLargeError: 413,
    e.ImagePixelLimitError: 422,
    e.JSONTooDeepError: 400,
    e.JSONNumberTooLargeError: 400,
    e.ConsentRequiredError: 400,
    e.FilePartExpectedError: 400,
    e.ClientDisconnectedError: 400,
    e.RequestTooLargeError: 413,
    e.UnsupportedMediaTypeError: 415,
    e.PrivacyBudgetError: 429,
    e.PrivacyBudgetLifetimeError: 403,
    e.ProofError: 409,
    e.MissingDependencyError: 501,
    e.AuthError: 401,
    e.InsufficientScopeError: 403,
    e.CsrfError: 403,
    e.NotFoundError: 404,
    e.MethodNotAllowedError: 405,
    e.NotReadyError: 409,
    e.JobFinishedError: 409,
    e.IdempotencyInProgressError: 409,
    e.AlreadyRegisteredError: 409,
    e.RequestTimeoutError: 408,
    e.ConflictError: 409,
    e.StoreConflictError: 409,
    e.RateLimitedError: 429,
    e.ServiceUnavailableError: 503,
}


def status_of(exc: e.TastemakerError) -> int:
    """The HTTP status for ``exc``: its class's, or its nearest listed ancestor's."""
    cls: type[e.TastemakerError] = type(exc)
    if isinstance(exc, e.ForwardedError):
        cls = e.error_class(exc.name) or e.TastemakerError
    for klass in cls.__mro__:
        if klass in STATUS:
            return STATUS[klass]
    return 500


def retry_after(seconds: float) -> str:
    """Retry-After is whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def headers_of(exc: e.TastemakerError) -> dict[str, str]:
    """Response headers for ``exc``: Retry-After, the Bearer challenge, and what the service attached."""
    headers = dict(getattr(exc, "headers", {}) or {})
    if isinstance(exc, e.AuthError):
        headers["WWW-Authenticate"] = 'Bearer realm="tastemaker"'
    elif isinstance(exc, e.InsufficientScopeError):
        need = " ".join(sorted(exc.scopes))
        headers["WWW-Authenticate"] = f'Bearer realm="tastemaker", error="insufficient_scope", scope="{need}"'
    if exc.retry_after_s is not None and "Retry-After" not in headers:
        headers["Retry-After"] = retry_after(exc.retry_after_s)
    return headers


def error_response(
    request_id: str | None,
    exc: e.TastemakerError,
    details: list[dict[str, Any]] | None = None,
    *,
    status: int | None = None,
) -> JSONResponse:
    """The JSON response for ``exc`` (the app's handlers and the middleware that refuses requests before they
    reach a route both use it); ``status`` overrides the class's (a framework error passed through as is)."""
    body: dict[str, Any] = {**exc.to_dict(), "request_id": request_id}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status or status_of(exc), headers=headers_of(exc))


__all__ = ["STATUS", "error_response", "headers_of", "retry_after", "status_of"]
