"""API errors as the library's own exceptions: one class per error code, the classes of :mod:`tastemaker.errors`.

The server answers every error with ``{"code", "message", "error", "request_id"}`` (OpenAI-compatible routes with
``{"error": {...}}``). :func:`error_from_response` finds the class that owns the ``code``
(:func:`~tastemaker.errors.error_class_for_code`) and raises it with the server's message, so client code catches
the same classes the library raises locally (``QuotaExceededError``, ``NoFaceError``, ``InsufficientScopeError``...).
A code this version does not know becomes the class for its HTTP status, keeping the code.

The classes' constructors take local context (a file and line, a face count) the wire does not carry, so the
exception is made without calling them and given its message, ``code``, ``retry_after_s`` and what the response
said: ``status_code``, ``request_id``, ``body``, ``headers``.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from .. import errors as e

#: the class for a status when the code is unknown to this version
_BY_STATUS: dict[int, type[e.TastemakerError]] = {
    400: e.InputError, 401: e.AuthError, 403: e.InsufficientScopeError, 404: e.NotFoundError,
    405: e.MethodNotAllowedError, 408: e.RequestTimeoutError, 409: e.ConflictError, 413: e.RequestTooLargeError,
    415: e.UnsupportedMediaTypeError, 422: e.InputError, 429: e.RateLimitedError, 501: e.MissingDependencyError,
    503: e.ServiceUnavailableError,
}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None without one."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def build_error(
    code: str,
    message: str,
    *,
    status: int | None = None,
    retry_after_s: float | None = None,
    request_id: str | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> e.TastemakerError:
    """The library's exception for an API error ``code`` (see the module docstring)."""
    cls = e.InternalError if code == "internal_error" else e.error_class_for_code(code)
    if cls is None:
        cls = _BY_STATUS.get(status or 500, e.InternalError if (status or 500) >= 500 else e.InputError)
    exc = cls.__new__(cls)
    e.TastemakerError.__init__(exc, message)
    exc.code = code
    exc.retry_after_s = retry_after_s if retry_after_s is not None else cls.retry_after_s
    extra: dict[str, Any] = {
        "status_code": status, "request_id": request_id, "body": body, "headers": dict(headers or {}),
        # attributes some classes' constructors set, so the instances behave like the library's own
        "scopes": frozenset(), "allow": (headers or {}).get("allow", ""), "account_id": None,
        "resets_at": body.get("resets_at") if isinstance(body, dict) else None,
        "param": message.split(":", 1)[0] if ":" in message else None,
    }
    for name, value in extra.items():
        if name not in vars(exc):
            setattr(exc, name, value)
    return exc


def error_from_response(status: int, headers: Mapping[str, str], body: Any, text: str) -> e.TastemakerError:
    """The exception for an error response (either error shape; a body that is not ours keeps its text)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # the OpenAI-compatible routes' shape
        body = {**body["error"], "error": body["error"].get("type")}
    if isinstance(body, dict) and "code" in body and "message" in body:
        code, message, rid = str(body["code"]), str(body["message"]), body.get("request_id")
    else:
        code, message, rid = f"http_{status}", f"HTTP {status}: {text[:300] or 'no body'}", None
    return build_error(code, message, status=status, retry_after_s=retry_after(headers), request_id=rid,
                       body=body, headers=headers)


__all__ = ["build_error", "error_from_response", "retry_after"]
