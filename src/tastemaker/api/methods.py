"""HTTP method semantics the router does not give by itself (RFC 9110 §9.3.2, §9.3.7, §15.5.6).

FastAPI registers a ``@router.get`` route for GET alone and answers a wrong method with the ``Allow`` of the
first route on the path only. :class:`HttpMethods` (pure ASGI, in front of authentication) looks at every
route on the requested path:

* **HEAD** is served wherever GET is: the request runs as GET (authentication, scopes and limits included)
  and the response goes out with its status and headers but no body;
* **OPTIONS** is answered ``204`` with ``Allow``, without authentication (the methods of a path are public:
  the OpenAPI document lists them);
* any other method the path does not have is a ``405 method_not_allowed`` whose ``Allow`` lists every method
  of the path (``GET, HEAD, DELETE, OPTIONS`` on ``/v1/boards/{id}``), before authentication.

Paths no route matches are left to the router (404); so are routes that take any method.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import MethodNotAllowedError
from .http_errors import error_response

#: The order methods are listed in ``Allow``.
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")



def allow_header(methods: set[str]) -> str:
    """``Allow`` for a path with route methods ``methods``: HEAD with GET, and OPTIONS, always."""
    full = set(methods) | {"OPTIONS"}
    if "GET" in full:
        full.add("HEAD")
    return ", ".join(sorted(full, key=lambda m: (_ORDER.index(m) if m in _ORDER else len(_ORDER), m)))


class HttpMethods:
    """ASGI middleware: HEAD as GET without a body, OPTIONS with ``Allow``, and a correct ``Allow`` on 405."""

    def __init__(self, app: ASGIApp, routes: Any) -> None:
        self.app = app
        self.routes = routes  # the router's list, read at request time (routes are added after the middleware)

    def methods_of(self, scope: Scope) -> set[str] | None:
        """Methods of every route matching the path; None when none matches or one takes any method."""
        found: set[str] = set()
        matched = False
        for route in self.routes:
            if not isinstance(route, Route):
                continue
            match, _ = route.matches(scope)
            if match is Match.NONE:
                continue
            if route.methods is None:
                return None
            matched = True
            found |= route.methods
        return found if matched else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        methods = self.methods_of(scope)
        method = scope["method"]
        if methods is None or (method in methods and method != "HEAD"):
            await self.app(scope, receive, send)
            return
        allow = allow_header(methods)
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 204,
                        "headers": [(b"allow", allow.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if method == "HEAD" and "GET" in methods:
            await self._head(scope, receive, send)
            return
        rid = scope.get("state", {}).get("request_id")
        exc = MethodNotAllowedError(
            f"{method} is not allowed on {scope['path']}; this path takes {allow}", allow=allow
        )
        await error_response(rid, exc)(scope, receive, send)

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request as GET; send the response's status and headers, then end it with no body.

        A streaming response (server-sent events) is told the client has gone once its headers are out.
        """
        done = False

        async def send_head(message: Message) -> None:
            nonlocal done
            if done:
                if message["type"] == "http.response.body" and message.get("more_body", False):
                    raise OSError("HEAD: the response is complete")  # ends a stream (ASGI 2.4 servers)
                return
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                done = True

        async def receive_head() -> Message:
            if done:
                return {"type": "http.disconnect"}  # ends a stream (ASGI 2.3 servers listen for this)
            return await receive()

        await self.app({**scope, "method": "GET"}, receive_head, send_head)


__all__ = ["HttpMethods", "MethodNotAllowedError", "allow_header"]
