"""``create_app(settings)``: the FastAPI app, its middleware, and the one error handler.

Errors are translated here and only here. Every :class:`~tastemaker.errors.TastemakerError` becomes
``{"code", "message", "error", "request_id"}`` with the class's HTTP status (and its headers, e.g.
``Retry-After``); framework errors (validation, unknown route, body too large) are first turned into
Tastemaker errors and go through the same function; anything unexpected is a 500 ``internal_error``
whose body never carries a traceback (the log does).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..audit import AuditLog
from ..errors import (
    ClientDisconnectedError,
    ConfigurationError,
    FilePartExpectedError,
    InternalError,
    MalformedBodyError,
    NotFoundError,
    RequestError,
    RequestTooLargeError,
    ServiceError,
    TastemakerError,
)
from ..forget import mark_server_store
from ..jobs import JobRunner, VerifyPool
from ..jobs.queue import QueueRunner
from ..media import make_private_dirs
from ..plugins import Plugins
from ..store import open_store
from .denials import DenialLog
from .deps import AuthGate, Services
from .groupcommit import GroupCommit
from .http_errors import error_response, status_of
from .limits import RateLimiter
from .methods import HttpMethods, MethodNotAllowedError, allow_header
from .openai_compat import OpenAIErrors
from .routes import (
    account,
    boards,
    feedback,
    generations,
    health,
    openai_images,
    plugins,
    records,
    search,
    styleembed,
    verify,
)
from .schemas import FeedbackIn, GenerationCreate, PinIn, RecordCreate, StyleEmbedIn, VerifyIn
from .settings import ServerSettings, load_server_settings

log = logging.getLogger("tastemaker.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")



class _BodyTooLarge(StarletteHTTPException):
    """Raised from inside body reading; an HTTPException so the frameworks pass it through untouched."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit / 1e6:.0f} MB limit")


class EdgeMiddleware:
    """Request ids, the request-body cap, and rate-limit headers on every response (pure ASGI, so SSE
    streams are not buffered)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        incoming = Headers(scope=scope).get("x-request-id", "")
        rid = incoming if _REQUEST_ID.match(incoming) else "req_" + secrets.token_hex(8)
        state["request_id"] = rid

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                for k, v in state.get("rate_headers", {}).items():
                    if k not in headers:
                        headers[k] = v
            await send(message)

        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            exc = RequestTooLargeError(
                f"the request body is {int(length) / 1e6:.1f} MB; the limit is {self.max_body / 1e6:.0f} MB"
            )
            await error_response(rid, exc)(scope, receive, send_with_headers)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        await self.app(scope, limited_receive, send_with_headers)


def _rid(request: Request) -> str | None:
    rid: str | None = getattr(request.state, "request_id", None)
    return rid


async def _on_tastemaker_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TastemakerError)
    status = status_of(exc)
    if status >= 500:
        level = logging.ERROR if status == 500 else logging.WARNING
        log.log(level, "%s %s -> %s %s: %s", request.method, request.url.path, status, exc.code, exc.message)
    return error_response(_rid(request), exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = exc.errors()
    details = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errs[:20]
    ]
    file_fields = [str(e["loc"][1]) for e in errs if "Expected UploadFile" in str(e.get("msg", "")) and
                   len(e.get("loc", ())) > 1 and e["loc"][0] == "body"]
    if file_fields:  # a text part where a file goes (FastAPI says "Expected UploadFile, received <class 'str'>")
        return error_response(_rid(request), FilePartExpectedError(file_fields[0]))
    if any(e.get("type") == "json_invalid" for e in errs):
        err: TastemakerError = MalformedBodyError("the body is not valid JSON")
    else:
        summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
        err = RequestError(summary or "the request is invalid")
    return error_response(_rid(request), err, details)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status, detail = exc.status_code, str(exc.detail)
    err: TastemakerError
    passthrough: int | None = None  # a status the framework chose that no class of ours stands for
    if status == 404:
        err = NotFoundError(f"no endpoint {request.method} {request.url.path}; see /docs")
    elif status == 405:  # HttpMethods answers first; this is the router's own, with the same Allow
        methods = HttpMethods(request.app, request.app.state.method_routes).methods_of(request.scope) or set()
        allow = allow_header(methods)
        err = MethodNotAllowedError(
            f"{request.method} is not allowed on {request.url.path}; this path takes {allow}", allow=allow
        )
    elif status == 413:
        err = RequestTooLargeError(detail)
    elif status == 400:
        err = MalformedBodyError(f"the request body could not be parsed ({detail})")
    else:
        err, passthrough = ServiceError(detail), status
        err.code = f"http_{status}"
    resp = error_response(_rid(request), err, status=passthrough)
    for k, v in (exc.headers or {}).items():
        resp.headers.setdefault(k, v)
    return resp


async def _on_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    """The client went away before sending its whole body: nothing was done; one line in the log, no traceback.

    The response goes nowhere (the connection is closed); it exists because a handler must return one.
    """
    log.info("%s %s: the client disconnected before sending the whole body (request %s); nothing was done",
             request.method, request.url.path, _rid(request))
    err = ClientDisconnectedError("the client disconnected before sending the whole request body")
    return error_response(_rid(request), err)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, _rid(request))
    return error_response(
        _rid(request), InternalError(f"internal error; it has been logged (request id {_rid(request)})")
    )


def build_services(settings: ServerSettings) -> Services:
    store = open_store(settings.db_url, settings.blob_dir)
    audit = AuditLog(settings.secret_key.get_secret_value())
    common: dict[str, Any] = dict(
        executor=settings.job_executor,
        engine=settings.engine,
        identity_threshold=settings.identity_threshold,
        max_pixels=settings.max_image_pixels,
        max_bytes=settings.max_image_bytes,
        data_dir=settings.data_dir,
        job_timeout_s=settings.job_timeout_seconds,
        provenance_secret=settings.provenance_secret,
    )
    runner: JobRunner
    if settings.queue_url is not None:  # queue mode: `tastemaker worker` processes render (docs/deploy.md)
        settings.check_queue()
        runner = QueueRunner(store, audit, queue_url=settings.queue_url, database_url=settings.db_url,
                             secret=settings.secret_key.get_secret_value(), capacity=settings.queue_capacity,
                             **common)
    else:
        runner = JobRunner(store, audit, workers=settings.job_workers, queue_size=settings.job_queue_size, **common)
    try:  # a misspelt plugin name or policy is found at startup, not on the first job
        Plugins.load(settings.plugins, on_error=settings.plugin_errors)
    except TastemakerError as exc:
        raise ConfigurationError(f"TASTEMAKER_PLUGINS / TASTEMAKER_PLUGIN_ERRORS: {exc.message}") from None
    runner.plugins = (settings.plugins, settings.plugin_errors)
    return Services(
        settings=settings,
        store=store,
        audit=audit,
        limiter=RateLimiter(settings.ratelimit_storage_url),
        runner=runner,
        denials=DenialLog(store, audit, settings.secret_key.get_secret_value()),
        verify_pool=VerifyPool(
            workers=settings.verify_workers,
            queue_size=settings.verify_queue_size,
            per_account=settings.verify_per_account,
            executor=settings.job_executor,
            yield_to=runner.foreground,
        ),
        writes=GroupCommit(store, audit),
    )


def _startup(svc: Services) -> None:
    make_private_dirs(svc.settings.data_dir)  # it holds pins, outputs and keys: 0700 when Tastemaker makes it
    mark_server_store(svc.settings.data_dir)
    if svc.settings.auto_migrate:
        svc.store.upgrade()
    svc.store.check_schema()
    with svc.store.session() as s:
        s.purge_expired_idempotency()
        s.commit()
    svc.runner.start()
    svc.verify_pool.start()
    svc.denials.start()
    svc.writes.start()


def _shutdown(svc: Services) -> None:
    svc.runner.stop(svc.settings.shutdown_grace_seconds)
    svc.verify_pool.stop()
    svc.denials.stop()
    svc.writes.stop()
    svc.store.dispose()


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the service for ``settings`` (default: the environment). Refuses default secrets outside dev mode.

    The database is migrated (``auto_migrate``) and the job runner started — recovering jobs a previous
    process left unfinished — when the app starts, and stopped when it stops.
    """
    settings = settings or load_server_settings()
    settings.check_secrets()
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_startup, services)
        try:
            yield
        finally:
            await run_in_threadpool(_shutdown, services)

    app = FastAPI(
        title="Tastemaker",
        version=__version__,
        summary="A selfie + your board -> you, in your aesthetic.",
        description=(
            "Authenticate with `Authorization: Bearer tm_...` (keys come from `tastemaker keys create`). Every "
            "error is JSON with a stable `code` and a human `message`. Limits per tier are reported in "
            "`RateLimit`, `RateLimit-Policy` and `X-RateLimit-*` headers; `GET /v1/usage` has the month's quota."
        ),
        lifespan=lifespan,
        openapi_tags=[
            {"name": "boards", "description": "Upload pinned images with their engagement"},
            {"name": "taste", "description": "Taste profiles (strictly rate-limited) and feedback"},
            {"name": "generations", "description": "Asynchronous image generation"},
            {"name": "provenance", "description": "Where an image came from (any tier, own rate limit); registering "
             "outputs rendered on your device"},
            {"name": "account", "description": "Usage and quota; deleting the account"},
            {"name": "search", "description": "The server's search index by text, board or pin (with why)"},
            {"name": "service", "description": "Health"},
        ],
    )
    app.state.services = services
    routers = (boards, styleembed, feedback, generations, verify, records, account, health, search, openai_images,
               plugins)
    # Middleware added last runs first: the edge (request id, body cap), then HEAD / OPTIONS / 405 with the
    # path's whole Allow, then the gate (key, bucket, scopes)
    api_routes = [route for module in routers for route in module.router.routes]
    app.add_middleware(AuthGate, services=services, routes=api_routes)
    app.state.method_routes = api_routes + [r for r in app.router.routes if isinstance(r, Route)]  # + /docs ...
    app.add_middleware(HttpMethods, routes=app.state.method_routes)
    app.add_middleware(EdgeMiddleware, max_body=settings.max_request_bytes)
    app.add_middleware(OpenAIErrors)  # outermost: /v1/images/... errors in OpenAI's shape, whoever refused
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
    app.add_exception_handler(TastemakerError, _on_tastemaker_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    for module in routers:
        app.include_router(module.router)
    app.include_router(openai_images.files_router)  # signed image links: no key, outside /v1
    _publish_body_models(app)
    return app


#: Request bodies that routes parse themselves (JSON or multipart) and reference from ``openapi_extra``.
BODY_MODELS = (GenerationCreate, FeedbackIn, VerifyIn, StyleEmbedIn, PinIn, RecordCreate)


def _publish_body_models(app: FastAPI) -> None:
    """Put :data:`BODY_MODELS` into the OpenAPI components, so the ``$ref`` s in ``openapi_extra`` resolve
    (FastAPI only publishes models it sees as parameters or response models)."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in BODY_MODELS:
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in js.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                components.setdefault(model.__name__, js)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
