"""``tastemaker worker``: run generation jobs from the queue (queue mode, see ``docs/deploy.md``).

Like the service commands, it needs the ``[server]`` extra and, for the queue, the ``[queue]`` extra
(Procrastinate); both are checked before anything is imported from them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from typing import Annotated

import typer

from ..api.settings import load_server_settings
from ..errors import ConfigurationError, MissingDependencyError
from .common import err_console

#: the native thread pools ``--threads`` holds (read by OpenMP, OpenBLAS, MKL, numexpr when a process starts)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Jobs at once (one render process each).")
    ] = 1,
    threads: Annotated[
        int,
        typer.Option(min=0, max=256, help="Native threads per render process (OpenCV, BLAS, OpenMP, faiss); "
                     "--threads 1 holds a one-job worker to about one core. 0: the libraries' defaults."),
    ] = 0,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run generation jobs from the queue (TASTEMAKER_QUEUE_URL, PostgreSQL) until SIGINT or SIGTERM.

    Needs the same TASTEMAKER_* settings as `tastemaker serve` (database, secret key, data dir with the blobs
    and the provenance store). A job the worker has not finished within TASTEMAKER_SHUTDOWN_GRACE_SECONDS of
    the signal goes back to the queue for another worker.
    """
    for module in ("sqlalchemy", "alembic", "psycopg"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError("queue workers", "server,postgres", module)
    if importlib.util.find_spec("procrastinate") is None:
        raise MissingDependencyError("queue workers", "queue", "procrastinate")
    settings = load_server_settings()
    settings.check_secrets()
    if settings.queue_url is None:
        raise ConfigurationError("set TASTEMAKER_QUEUE_URL (the PostgreSQL database of the job queue) to run a worker")
    settings.check_queue()
    if threads:
        for name in THREAD_VARIABLES:  # the render processes are spawned after this, with this environment
            os.environ[name] = str(threads)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for quiet in ("procrastinate", "alembic"):
        logging.getLogger(quiet).setLevel(max(logging.WARNING, logging.getLevelName(log_level.upper())))

    import psycopg  # the [server] and [queue] extras: see the module docstring
    from sqlalchemy.exc import OperationalError

    from ..audit import AuditLog
    from ..jobs.queue import ensure_schema
    from ..jobs.worker import QueueWorker
    from ..store import open_store

    store = open_store(settings.db_url, settings.blob_dir)
    try:
        try:
            if settings.auto_migrate:
                store.upgrade()
            store.check_schema()
            ensure_schema(settings.queue_url)
        except (OperationalError, psycopg.OperationalError) as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ConfigurationError(f"cannot reach the database or the queue: {first}") from None
        secret = settings.secret_key.get_secret_value()
        w = QueueWorker(
            store, AuditLog(secret), queue_url=settings.queue_url, secret=secret, concurrency=concurrency,
            threads=threads, engine=settings.engine, identity_threshold=settings.identity_threshold,
            max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes, data_dir=str(settings.data_dir),
            job_timeout_s=settings.job_timeout_seconds, provenance_secret=settings.provenance_secret,
            lease_s=settings.queue_lease_seconds, heartbeat_s=settings.queue_heartbeat_seconds,
            stalled_s=settings.queue_stalled_seconds, sweep_s=settings.queue_sweep_seconds,
            requeue_after_s=settings.queue_requeue_after_seconds, max_attempts=settings.queue_max_attempts,
        )
        w.plugins = (settings.plugins, settings.plugin_errors)
        err_console.print(
            f"Tastemaker worker {w.owner}: {concurrency} job(s) at once, "
            f"{threads or 'default'} thread(s) each · data {settings.data_dir}", highlight=False,
        )
        asyncio.run(w.run(shutdown_grace_s=settings.shutdown_grace_seconds))
    finally:
        store.dispose()


def register(app: typer.Typer) -> None:
    """Add ``worker`` to ``app``."""
    from .common import handle_errors

    app.command()(handle_errors(worker))
