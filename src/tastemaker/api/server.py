"""Running the service under uvicorn, with deadlines for reading a request's headers and its body.

uvicorn bounds the idle time between requests on a kept-alive connection (``timeout_keep_alive``) but not
the time a client takes to *send* a request: its ``data_received`` cancels the keep-alive timer on every
byte, so a client that sends half its headers, or its headers and then a trickle of body, holds a
connection open for as long as it likes (slowloris). uvicorn has no setting for it (its issue #157 lists
``--timeout-request-start`` and ``--timeout-request-complete`` as not done), but ``uvicorn.Config(http=...)``
takes a protocol class. :func:`protocol_class` returns the one uvicorn's ``http="auto"`` picks (httptools
when installed, else h11) with two deadlines added:

* **headers** (``request_header_timeout_seconds``): from a new connection, or from the first byte of the
  next request on a kept-alive one, until the request's headers are complete;
* **body** (``request_body_timeout_seconds``): from the end of the headers until the end of the body — a
  whole upload must arrive within it, however slowly it trickles.

When one runs out, the client gets ``408 request_timeout`` with ``Connection: close`` (unless a response has
started, or it never sent a byte) and the connection is closed; a request that already reached the app
sees its client gone (``ClientDisconnect``) and does nothing. Responses are not limited: once a request is
in, a server-sent event stream or a ``Prefer: wait`` may take as long as they take. Behind a reverse proxy
the proxy's own limits (nginx ``client_header_timeout``, ``client_body_timeout``) apply first.
"""

from __future__ import annotations

import asyncio
import json
import logging
from functools import cache
from typing import Any

from .settings import ServerSettings

log = logging.getLogger("tastemaker.api")


def _timeout_response(phase: str, seconds: float) -> bytes:
    body = json.dumps(
        {
            "code": "request_timeout",
            "message": f"the request's {phase} did not arrive within {seconds:g} s; the connection is closed",
            "error": "RequestTimeout",
            "request_id": None,
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ReadDeadlines:
    """Mixin for a uvicorn HTTP protocol class: the header and body deadlines (see the module docstring).

    It relies on what both of uvicorn's HTTP/1.1 implementations share: ``self.cycle`` is the newest
    request (set when its headers are complete), ``cycle.more_body`` turns False once its body is complete,
    and ``cycle.disconnected`` / ``cycle.message_event`` tell a request its client is gone.
    """

    header_timeout: float = 10.0
    body_timeout: float = 120.0
    _deadline: asyncio.TimerHandle | None = None
    _deadline_phase: str = ""
    _deadline_cycle: Any = None
    _bytes_in: bool = False

    # uvicorn's attributes, for the type checker
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    client: tuple[str, int] | None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        self._track(before, got_bytes=bool(data))

    def on_response_complete(self) -> None:
        before = self.cycle
        super().on_response_complete()  # type: ignore[misc]
        self._track(before, got_bytes=False)  # a pipelined request may have been read meanwhile

    # ------------------------------------------------------------------ the deadlines
    def _track(self, before: Any, *, got_bytes: bool) -> None:
        cycle = self.cycle
        if self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        if cycle is not None and cycle is not before:  # a new request's headers are complete
            self._disarm()
            if cycle.more_body:
                self._arm("body", cycle)
            return
        if self._deadline_phase == "body":
            if cycle is not None and cycle is self._deadline_cycle and not cycle.more_body:
                self._disarm()  # its body is complete
            return
        if got_bytes and (cycle is None or cycle.response_complete):
            if self._deadline is None:
                self._arm("headers")
            self._bytes_in = True  # part of a request whose headers are not complete yet

    def _arm(self, phase: str, cycle: Any = None) -> None:
        self._disarm()
        seconds = self.header_timeout if phase == "headers" else self.body_timeout
        self._deadline_phase, self._deadline_cycle = phase, cycle
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._deadline_phase, self._deadline_cycle = None, "", None
        self._bytes_in = False

    def _expired(self) -> None:
        phase, cycle, got_bytes = self._deadline_phase, self._deadline_cycle, self._bytes_in
        self._deadline, self._deadline_phase, self._deadline_cycle, self._bytes_in = None, "", None, False
        if self.transport is None or self.transport.is_closing():
            return
        seconds = self.header_timeout if phase == "headers" else self.body_timeout
        what = "headers" if phase == "headers" else "body"
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        if phase == "body" or got_bytes:
            log.info("closed the connection from %s: the request's %s did not arrive within %g s",
                     client, what, seconds)
        if cycle is None or not cycle.response_started:
            if phase == "body" or got_bytes:
                self.transport.write(_timeout_response(what, seconds))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() now says the client is gone; its sends go nowhere
            cycle.message_event.set()
        self.transport.close()


def _base_protocol(http: str) -> type[asyncio.Protocol]:
    """uvicorn's protocol class for ``http``: "auto" (httptools when installed, else h11), "h11" or "httptools"."""
    if http == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return AutoHTTPProtocol


@cache
def protocol_class(header_timeout: float, body_timeout: float, http: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with :class:`ReadDeadlines` (pass it as ``uvicorn.run(..., http=...)``)."""
    base = _base_protocol(http)
    return type(
        f"Deadline{base.__name__}",
        (ReadDeadlines, base),
        {"header_timeout": float(header_timeout), "body_timeout": float(body_timeout)},
    )


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration plus the ``tastemaker`` loggers, at ``level``, in uvicorn's format."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["tastemaker"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def uvicorn_options(settings: ServerSettings, log_level: str = "info") -> dict[str, Any]:
    """The keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that :class:`ServerSettings` sets."""
    return {
        "http": protocol_class(settings.request_header_timeout_seconds, settings.request_body_timeout_seconds),
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "log_level": log_level,
        "log_config": log_config(log_level),
        "workers": 1,  # one process per database: the job runner's restart recovery assumes it
    }


__all__ = ["ReadDeadlines", "log_config", "protocol_class", "uvicorn_options"]
