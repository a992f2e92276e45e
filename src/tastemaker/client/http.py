"""What both clients share: a request as data (:class:`Call`), the retry policy, and server-sent event parsing.

**Retries** (:class:`Retry`): a 429 or 503 is retried after the server's ``Retry-After`` (when it says one; else
exponential backoff with jitter), up to ``attempts`` tries, unless the wait it asks for is longer than
``max_wait_s`` (a monthly quota that resets in days is raised at once, with ``retry_after_s`` set). A 409
``idempotency_key_in_use`` (the first try of the same request is still being processed) is retried the same way.
A connection that could not be made is always retried; a request that may have reached the server (a read
timeout, a dropped connection) is retried only when resending it cannot do the work twice: reads, and writes that
carry an ``Idempotency-Key``.

**Idempotency**: every write that the API deduplicates gets one ``Idempotency-Key`` per logical call (a UUID made
when the method is called), the same on every retry, so a retried submit never creates two jobs.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..errors import ServiceUnavailableError, TastemakerError
from .errors import error_from_response

#: statuses retried after Retry-After (or backoff)
RETRY_STATUSES = frozenset({429, 503})
RETRY_CODES = frozenset({"idempotency_key_in_use"})
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=10.0)

FileInput = str | Path | bytes | tuple[str, bytes]


@dataclass(frozen=True)
class Retry:
    """How hard to try (see the module docstring)."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    #: a Retry-After longer than this is not waited for: the error is raised with its ``retry_after_s``
    max_wait_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after_s is not None:
            return retry_after_s
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return base * (0.75 + random.random() / 2)


@dataclass
class Call:
    """One logical API call: rebuilt into a fresh httpx request on every try."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    #: send an Idempotency-Key (one per call, the same on every retry)
    idempotent_key: bool = False
    #: resending cannot do the work twice (a read)
    safe: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.idempotent_key:
            self.headers.setdefault("Idempotency-Key", str(uuid.uuid4()))

    @property
    def resendable(self) -> bool:
        """Whether a try that may have reached the server can be sent again."""
        return self.safe or "Idempotency-Key" in self.headers

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"headers": self.headers}
        for name in ("params", "json", "data", "files"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def checked(response: httpx.Response) -> httpx.Response:
    """The response if it is a success; the library's exception for its error code otherwise."""
    if response.status_code < 400:
        return response
    try:
        body: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    raise error_from_response(response.status_code, response.headers, body, response.text)


def should_retry(exc: TastemakerError, call: Call, attempt: int, retry: Retry) -> float | None:
    """Seconds to wait before retrying after ``exc`` (an API error), or None to raise it."""
    if attempt >= retry.attempts:
        return None
    status = getattr(exc, "status_code", None)
    if status not in RETRY_STATUSES and exc.code not in RETRY_CODES:
        return None
    if exc.code == "idempotency_key_in_use" and not call.resendable:
        return None
    wait = retry.delay(attempt, exc.retry_after_s)
    return None if wait > retry.max_wait_s else wait


def transport_retry(exc: httpx.TransportError, call: Call, attempt: int, retry: Retry) -> float | None:
    """Seconds to wait before retrying after a transport failure, or None to give up."""
    if attempt >= retry.attempts:
        return None
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return retry.delay(attempt, None) if never_sent or call.resendable else None


def unreachable(base_url: str, call: Call, exc: httpx.TransportError) -> ServiceUnavailableError:
    """A transport failure after the retries, as the library's 503 class, naming the server and what happened."""
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else f"failed ({type(exc).__name__}: {exc})"
    err = ServiceUnavailableError(f"{call.method} {base_url.rstrip('/')}{call.path} {what}", retry_after_s=5.0)
    err.code = "connection_failed"
    return err


def file_part(field_name: str, value: FileInput, default_name: str = "image") -> tuple[str, tuple[str, bytes, str]]:
    """A multipart file part from a path, bytes, or (file name, bytes)."""
    if isinstance(value, tuple):
        name, data = value
    elif isinstance(value, bytes | bytearray):
        name, data = default_name, bytes(value)
    else:
        path = Path(value)
        name, data = path.name, path.read_bytes()
    return field_name, (name, data, _media_type(data))


def _media_type(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def form_fields(**values: Any) -> dict[str, str]:
    """Multipart text fields: None left out, booleans as ``true``/``false``, objects as JSON text."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, dict | list):
            out[name] = json.dumps(value)
        else:
            out[name] = str(value)
    return out


class SSEParser:
    """Server-sent events from lines: yields ``(event, data)`` with ``data`` parsed as JSON."""

    def __init__(self) -> None:
        self.event: str = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> Iterator[tuple[str, Any]]:
        if line == "":
            if self.data:
                text = "\n".join(self.data)
                event, self.event, self.data = self.event, "message", []
                yield event, json.loads(text)
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)


__all__ = ["DEFAULT_TIMEOUT", "Call", "FileInput", "Retry", "SSEParser", "checked", "file_part", "form_fields",
           "should_retry", "transport_retry", "unreachable"]
