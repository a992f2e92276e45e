"""The OpenAI images API's shapes on top of Tastemaker's (``/v1/images/edits``, ``/v1/images/generations``).

Code written against the OpenAI images API (its Python package included) works against a Tastemaker server by
changing ``base_url`` and ``api_key``: the routes in :mod:`.routes.openai_images` are a thin adapter over the same
admission and job as ``POST /v1/generations``. This module holds what is OpenAI's and not Tastemaker's:

* :class:`OpenAIErrors`: every error answered on ``/v1/images/...`` — by a route, by authentication before it,
  by the rate limiter, by the framework — is rewritten into OpenAI's error object,
  ``{"error": {"message", "type", "param", "code"}}`` (plus our ``request_id``), with Retry-After and every other
  header kept; our 422 (input that cannot be used) becomes OpenAI's 400, the status its clients treat as a bad
  request. ``code`` stays Tastemaker's stable code; ``param`` names the field when the message starts with one.
* :func:`parse_size`: OpenAI's ``WIDTHxHEIGHT`` sizes onto the core's longest side + aspect (portraits and
  squares, and 3:2 landscapes such as ``1536x1024``; any other size is refused with a clear message);
* :func:`sign_image_url` / :func:`check_image_url`: ``response_format=url`` gives a link that works without the
  API key for an hour (as OpenAI's do), signed with a key derived from the server secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import NotFoundError, RequestError

PREFIX = "/v1/images/"
#: how long a ``response_format=url`` link works
URL_TTL_S = 3600
_URL_LABEL = b"tastemaker.openai.image-url.v1"

#: OpenAI ``size`` -> (longest side, aspect): squares, the portrait aspects and one landscape (3:2) the engines draw.
SIZES: dict[str, tuple[int, str] | None] = {
    "auto": None,
    "256x256": (256, "1:1"), "512x512": (512, "1:1"), "1024x1024": (1024, "1:1"), "1536x1536": (1536, "1:1"),
    "2048x2048": (2048, "1:1"),
    "819x1024": (1024, "4:5"), "1024x1280": (1280, "4:5"), "1638x2048": (2048, "4:5"),
    "683x1024": (1024, "2:3"), "1024x1536": (1536, "2:3"), "1365x2048": (2048, "2:3"),
    "576x1024": (1024, "9:16"), "1152x2048": (2048, "9:16"),
    "1024x683": (1024, "3:2"), "1536x1024": (1536, "3:2"), "2048x1365": (2048, "3:2"),
}


def parse_size(size: str | None) -> tuple[int, str] | None:
    """``(longest side, aspect)`` for an OpenAI size; None for ``auto`` (the request's own size and aspect)."""
    if size is None:
        return None
    value = str(size).strip().lower()
    if value in SIZES:
        return SIZES[value]
    raise RequestError(f"size: {size!r} is not a size this server draws; use one of {', '.join(SIZES)}")


def _url_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _URL_LABEL, hashlib.sha256).digest()


def _signature(secret: str, generation_id: str, k: int, expires: int) -> str:
    msg = f"{generation_id}/{k}/{expires}".encode()
    return hmac.new(_url_key(secret), msg, hashlib.sha256).hexdigest()


def sign_image_url(base: str, secret: str, generation_id: str, k: int, ext: str, *, now: float | None = None) -> str:
    """A link to image ``k`` of a generation that works without a key until it expires (:data:`URL_TTL_S`)."""
    expires = int((now if now is not None else time.time()) + URL_TTL_S)
    sig = _signature(secret, generation_id, k, expires)
    return f"{base.rstrip('/')}/files/images/{generation_id}/{k}.{ext}?expires={expires}&signature={sig}"


def check_image_url(secret: str, generation_id: str, k: int, expires: int, signature: str) -> None:
    """A 404 unless the link was signed here for this image and has not expired (nothing tells which)."""
    good = _signature(secret, generation_id, k, expires)
    if expires < time.time() or not hmac.compare_digest(good, signature):
        raise NotFoundError("this image link is unknown or has expired (links work for an hour); ask again")


# ------------------------------------------------------------------------------------------ errors

#: params a message may start with (``"size: ..."``): OpenAI's fields and Tastemaker's extras
PARAMS = frozenset({
    "image", "mask", "prompt", "n", "size", "response_format", "output_format", "background", "stream", "user",
    "model", "quality", "board_id", "profile", "consent", "strength", "seed", "mode", "aspect", "framing",
    "face_index", "identity", "markup", "svg", "partial_images", "output_compression", "input_fidelity", "subject",
})


def error_type(status: int, code: str) -> str:
    """OpenAI's ``type`` for one of our errors."""
    if code == "quota_exceeded":
        return "insufficient_quota"
    if status == 429:
        return "rate_limit_error"
    if status == 403:
        return "permission_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(body: dict[str, Any], status: int) -> tuple[dict[str, Any], int]:
    """Our error body as OpenAI's error object, and its status (422 -> 400)."""
    message = str(body.get("message", ""))
    code = str(body.get("code", "internal_error"))
    head = message.split(":", 1)[0].strip()
    param = head if ":" in message and head in PARAMS else None
    new_status = 400 if status == 422 else status
    error: dict[str, Any] = {"message": message, "type": error_type(new_status, code), "param": param, "code": code}
    if body.get("request_id") is not None:
        error["request_id"] = body["request_id"]
    return {"error": error}, new_status


class OpenAIErrors:
    """ASGI middleware: error responses on ``/v1/images/...`` in OpenAI's error shape (see the module docstring).

    Outermost, so that refusals made before any route (authentication, limits, body size) are rewritten too.
    Success responses and anything that is not a JSON error body pass through untouched, unbuffered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_error(start, b"".join(chunks), send)

        await self.app(scope, receive, rewrite)

    @staticmethod
    async def _send_error(start: Message, raw: bytes, send: Send) -> None:
        headers = MutableHeaders(raw=list(start["headers"]))
        status = int(start["status"])
        try:
            body = json.loads(raw) if headers.get("content-type", "").startswith("application/json") else None
        except ValueError:
            body = None
        if isinstance(body, dict) and "code" in body and "message" in body:
            doc, status = openai_error(body, status)
            raw = json.dumps(doc).encode()
            headers["content-length"] = str(len(raw))
        await send({**start, "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": raw, "more_body": False})


__all__ = ["PREFIX", "SIZES", "URL_TTL_S", "OpenAIErrors", "check_image_url", "openai_error", "parse_size",
           "sign_image_url"]
