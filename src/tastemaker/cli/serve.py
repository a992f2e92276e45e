"""Service commands: ``serve`` (one process, or ``--workers N`` in queue mode), ``ui``, ``keys create|list|revoke``,
``audit verify|checkpoint``, ``db upgrade``.

The HTTP service needs the ``[server]`` extra (FastAPI, uvicorn, SQLAlchemy, Alembic, limits), which a core
install lacks. So this module imports only what the core has; each command first checks the extra
(:func:`_require_server_extra`, which names what to install) and then imports the service's modules inside
the command. These imports in functions are for the optional extra only; there is no cycle to dodge.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets as secrets_
import socket
import threading
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..api.keys import ALL_SCOPES
from ..api.settings import DEV_SECRET, ServerSettings, load_server_settings
from ..errors import AuditTamperedError, ConfigurationError, InputError, MissingDependencyError
from ..media import make_private_dirs, write_atomic
from .common import console, err_console, handle_errors

if TYPE_CHECKING:
    from ..audit import AuditLog
    from ..store import Store

keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
db_app = typer.Typer(help="The service database.", no_args_is_help=True)


def _require_server_extra() -> None:
    for module in ("fastapi", "uvicorn", "sqlalchemy", "alembic", "limits"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError("the HTTP service", "server", module)


@contextmanager
def _admin(*, secrets: bool = True) -> Iterator[tuple[ServerSettings, Store, AuditLog]]:
    """An admin command's settings, open store and audit log (secrets checked first); the store is closed
    after, whatever happens."""
    _require_server_extra()
    from ..audit import AuditLog

    settings = load_server_settings()
    if secrets:
        settings.check_secrets()
    store = _open(settings)
    try:
        yield settings, store, AuditLog(settings.secret_key.get_secret_value())
    finally:
        store.dispose()


def _open(settings: ServerSettings) -> Store:
    from ..store import open_store  # the [server] extra (SQLAlchemy): see the module's docstring

    store = open_store(settings.db_url, settings.blob_dir)
    if settings.auto_migrate:
        store.upgrade()
    store.check_schema()
    return store


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port (1-65535).")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="API processes sharing the port (uvicorn's process model); more than "
                     "one needs queue mode (TASTEMAKER_QUEUE_URL) and Redis rate limits."),
    ] = 1,
) -> None:
    """Run the web app at / and the HTTP API under /v1 (docs at /docs). Refuses the built-in secret unless
    TASTEMAKER_DEV_MODE=1."""
    _require_server_extra()
    import uvicorn  # the [server] extra, as the service modules below: see the module's docstring

    from ..api.server import uvicorn_options

    settings = load_server_settings()
    settings.check_secrets()
    settings.check_queue()
    if workers > 1:
        _check_many(settings)
    jobs = ("queue workers (TASTEMAKER_QUEUE_URL)" if settings.queue_url
            else f"{settings.job_workers} job worker(s) in-process")
    err_console.print(
        f"Tastemaker on http://{host}:{port}/ (the app at /, the API under /v1, docs: /docs) · data "
        f"{settings.data_dir} · database {settings.db_url.split('://')[0]} · {jobs} · {workers} API process(es)"
        + (" · [yellow]dev mode[/]" if settings.dev_mode else ""),
        highlight=False,
    )
    options = uvicorn_options(settings, log_level)
    if workers == 1:
        # Embedded: one process per database (the job runner's restart recovery assumes it), and deadlines for
        # reading each request's headers and body (see tastemaker.api.server).
        from ..web.mount import create_site

        uvicorn.run(create_site(settings), host=host, port=port, **options)
        return
    # Several processes: migrate once here, then uvicorn starts each from import strings (tastemaker.cli.asgi)
    _open(settings).dispose()
    from ..jobs.queue import ensure_schema

    assert settings.queue_url is not None
    ensure_schema(settings.queue_url)
    options.update(workers=workers, http="tastemaker.cli.asgi:DeadlineProtocol")
    uvicorn.run("tastemaker.cli.asgi:create", factory=True, host=host, port=port, **options)


def _check_many(settings: ServerSettings) -> None:
    """Several API processes share jobs, rate limits and events only through the queue, the database and Redis."""
    if settings.queue_url is None:
        raise ConfigurationError(
            "--workers above 1 needs queue mode: set TASTEMAKER_QUEUE_URL and TASTEMAKER_DATABASE_URL (PostgreSQL) "
            "and run `tastemaker worker` processes (the in-process job pool belongs to one process)"
        )
    if not settings.ratelimit_storage_url.startswith(("redis://", "rediss://", "redis+")):
        raise ConfigurationError(
            "--workers above 1 needs shared rate limits: set TASTEMAKER_RATELIMIT_STORAGE_URL to redis://host:port "
            "(memory:// would give each process its own buckets)"
        )


# ------------------------------------------------------------------------------------------ ui

#: in the data dir (0600): the secret ``tastemaker ui`` made when the environment gave none
UI_SECRET_FILE = "ui-secret-key"
#: in the data dir (0600): the local account's and key's ids (the raw key is never kept)
UI_ACCOUNT_FILE = "ui-account.json"


def ui_secret(data_dir: Path) -> str:
    """The local secret key: made once (random, 0600 in the data dir) and read back on every start, so the
    audit chain and provenance keys stay the same across restarts without dev mode."""
    path = Path(data_dir) / UI_SECRET_FILE
    if not path.exists():
        make_private_dirs(data_dir)
        write_atomic(path, secrets_.token_urlsafe(48).encode())
    os.chmod(path, 0o600)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < 32:
        raise ConfigurationError(f"{path} holds no usable secret; remove it and start again for a new one")
    return secret


def ui_account(settings: ServerSettings, tier: str) -> tuple[str, str]:
    """The local person's account and key ids: the ones remembered in the data dir while that key still works,
    otherwise a new account and key (the raw key is thrown away: the one-time link signs in)."""
    from ..api.admin import issue_key  # the [server] extra: see the module's docstring
    from ..audit import AuditLog

    path = Path(settings.data_dir) / UI_ACCOUNT_FILE
    remembered: dict[str, str] = {}
    try:
        remembered = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        pass
    store = _open(settings)
    try:
        key_id = remembered.get("key_id", "")
        if key_id:
            with store.session() as s:
                key = s.get_key(key_id)
                if key is not None and key.revoked_at is None and key.account_id == remembered.get("account_id"):
                    return key.account_id, key.id
        issued = issue_key(store, AuditLog(settings.secret_key.get_secret_value()), settings, name="local",
                           tier=tier)
    finally:
        store.dispose()
    make_private_dirs(settings.data_dir)
    write_atomic(path, json.dumps({"account_id": issued.account_id, "key_id": issued.key_id}).encode())
    return issued.account_id, issued.key_id


def ui(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port on 127.0.0.1 (0: any free one).")] = 8765,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the sign-in link; open no browser.")] = False,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the local store lives (default: the data dir).")
    ] = None,
    tier: Annotated[str, typer.Option(help="Tier of the local account, when one is made.")] = "pro",
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """The web app for one person on this machine: no API key to type, listening on 127.0.0.1 only.

    The first start makes a secret key (unless TASTEMAKER_SECRET_KEY is set) and a local account in the data
    dir; every start prints a link that signs the browser in once, and opens it.
    """
    _require_server_extra()
    import uvicorn  # the [server] extra, as the service modules below: see the module's docstring

    from ..api.server import uvicorn_options
    from ..web.mount import LocalLogin, create_site

    settings = load_server_settings(data_dir=data_dir)
    if settings.secret_key.get_secret_value() == DEV_SECRET:  # the environment gave none: keep one of our own
        settings = load_server_settings(data_dir=settings.data_dir, secret_key=ui_secret(settings.data_dir))
    settings.check_secrets()
    account_id, key_id = ui_account(settings, tier)
    local = LocalLogin(account_id, key_id)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port") from None
    bound = sock.getsockname()[1]
    link = f"http://127.0.0.1:{bound}/local-login?token={local.token}"
    server = uvicorn.Server(uvicorn.Config(create_site(settings, local=local), **uvicorn_options(settings, log_level)))

    def announce() -> None:
        """Once the app answers: the link (it signs in once), and the browser unless --no-browser."""
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if not server.started:
            return
        console.print(f"Tastemaker is running at http://127.0.0.1:{bound}/ (data {settings.data_dir}); Ctrl-C "
                      "stops it.", highlight=False, soft_wrap=True)
        console.print(f"Sign in (this link works once): {link}", highlight=False, soft_wrap=True)
        console.file.flush()
        if not no_browser:
            webbrowser.open(link)

    threading.Thread(target=announce, name="tastemaker-ui-announce", daemon=True).start()
    server.run(sockets=[sock])


@keys_app.command("create")
@handle_errors
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who the key is for (names a new account).")],
    tier: Annotated[
        str, typer.Option(help="Tier of the new account: free or pro (see TASTEMAKER_TIERS).")
    ] = "free",
    account: Annotated[
        str | None, typer.Option(help="Add a key to this existing account (acc_...) instead of a new one.")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="What the key may do: boards:read, boards:write, styleembed, generate, verify, register (repeat, "
            "or comma-separate; default: all). A key for a third-party style app: --scope styleembed; for on-device "
            "mode: --scope styleembed,register.",
        ),
    ] = None,
) -> None:
    """Create an API key and print it — once. Only its hash is stored."""
    with _admin() as (settings, store, log):
        from ..api.admin import issue_key

        issued = issue_key(store, log, settings, name=name, tier=tier, account_id=account, scopes=scope)
    console.print(issued.key, highlight=False, soft_wrap=True)
    err_console.print(
        f"key {issued.key_id} for account {issued.account_id} ({issued.tier} tier; scopes: {issued.scopes}). "
        "Store it now: it is not shown again.",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("list")
@handle_errors
def keys_list() -> None:
    """List keys (prefixes and ids; keys themselves are never stored)."""
    with _admin(secrets=False) as (_, store, _log):
        from ..api.admin import list_keys

        infos = list_keys(store)
    table = Table(title=f"{len(infos)} API key(s)")
    for col in ("id", "prefix", "name", "account", "tier", "scopes", "created", "last used", "status"):
        table.add_column(col, no_wrap=col == "scopes")
    for k in infos:
        table.add_row(
            k.key_id,
            k.prefix + "…",
            k.name,
            k.account_id,
            k.tier,
            "all" if k.scopes == ALL_SCOPES else ",".join(k.scopes.split()),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
            f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active",
        )
    console.print(table)


@keys_app.command("revoke")
@handle_errors
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id (key_...) or display prefix (tm_XXXXXXXX).")],
) -> None:
    """Revoke a key: requests with it get 401 api_key_revoked from now on."""
    with _admin() as (_, store, log):
        from ..api.admin import revoke_key

        info = revoke_key(store, log, key)
    console.print(f"revoked {info.key_id} ({info.prefix}…, account {info.account_id})", highlight=False)


@audit_app.command("verify")
@handle_errors
def audit_verify(
    anchor: Annotated[
        str | None, typer.Option(help="SEQ:HASH printed by an earlier verify; checks the log still contains it.")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A file of signed checkpoints from `tastemaker audit checkpoint`: every checkpointed entry "
            "must still be there (catches a log whose tail was cut off and its head rolled back)."
        ),
    ] = None,
) -> None:
    """Check the whole chain: any edited, deleted, inserted or truncated entry is reported (exit 5)."""
    _require_server_extra()
    from ..audit import parse_anchor, parse_checkpoints

    try:
        anchored = parse_anchor(anchor) if anchor else None
        checkpoints = parse_checkpoints(checkpoint.read_text(encoding="utf-8")) if checkpoint else None
    except (ValueError, OSError) as exc:
        raise InputError(f"{checkpoint}: {exc}" if checkpoint and not anchor else str(exc)) from None
    with _admin() as (_, store, log), store.session() as s:
        report = log.verify(s, anchor=anchored, checkpoints=checkpoints)
    if report.problems:
        table = Table(title="Audit log problems")
        table.add_column("seq")
        table.add_column("problem")
        for p in report.problems:
            table.add_row(str(p.seq), p.what)
        console.print(table)
        raise AuditTamperedError(
            f"the audit log failed verification: {len(report.problems)} problem(s) in {report.entries} entries"
        )
    checked = f"; {len(checkpoints)} checkpoint(s) still in the log" if checkpoints else ""
    console.print(
        f"audit log OK: {report.entries} entries, chain intact{checked}. Head (record it to anchor later): "
        f"{report.head_seq}:{report.head_hash}",
        highlight=False,
        soft_wrap=True,
    )


@audit_app.command("checkpoint")
@handle_errors
def audit_checkpoint(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Append the checkpoint to this file (keep it off this server)."),
    ] = None,
) -> None:
    """Verify the chain, then print a signed checkpoint (entry count, last hash, time) of it.

    Keep checkpoints where whoever can write the database cannot (another machine, a write-once bucket)
    and pass the file to `tastemaker audit verify --checkpoint`: a log cut short is then caught.
    """
    with _admin() as (_, store, log), store.session() as s:
        report = log.verify(s)
        if report.problems:
            raise AuditTamperedError(
                f"the audit log fails verification ({len(report.problems)} problem(s)); no checkpoint was "
                "written: run `tastemaker audit verify`"
            )
        cp = log.checkpoint(s)
    line = cp.to_json()
    if output is not None:
        with output.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        err_console.print(f"checkpoint of {cp.seq} entries appended to {output}", highlight=False)
    console.print(line, highlight=False, soft_wrap=True)


@db_app.command("upgrade")
@handle_errors
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply the packaged migrations (the server also does this at startup unless TASTEMAKER_AUTO_MIGRATE=0)."""
    _require_server_extra()
    from ..store import open_store

    settings = load_server_settings()
    store = open_store(settings.db_url, settings.blob_dir)
    try:
        before = store.schema_revision()
        after = store.upgrade(revision)
    finally:
        store.dispose()
    where = settings.db_url.split("@")[-1] if "@" in settings.db_url else settings.db_url
    console.print(f"database {where}: {before or 'empty'} -> {after}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the service commands to ``app`` (the ``keys``, ``audit`` and ``db`` groups, ``serve`` and ``ui``)."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")
    app.command()(handle_errors(serve))
    app.command()(handle_errors(ui))
