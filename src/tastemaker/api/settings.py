"""Server settings: the core :class:`~tastemaker.config.Settings` plus what only the service needs.

Still one place reads the environment: this subclass of the core settings, with the same
``TASTEMAKER_*`` prefix, built once by the CLI (``tastemaker serve``) or by whoever calls
:func:`~tastemaker.api.create_app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from ..config import Settings
from ..errors import ConfigurationError

#: The built-in secret. Fine on a laptop in dev mode, refused anywhere else.
DEV_SECRET = "tastemaker-dev-secret-do-not-use-in-production"
MIN_SECRET_CHARS = 32


class TierLimits(BaseModel):
    """One tier's limits. ``styleembed`` is stricter than plain requests: bulk taste extraction is the
    scraping risk, generation is the cost."""

    requests_per_minute: int = Field(ge=1)
    styleembed_per_minute: int = Field(ge=1)
    images_per_month: int = Field(ge=0)
    max_active_jobs: int = Field(ge=1, description="queued + running generations per account")
    verify_per_minute: int = Field(30, ge=1, description="POST /v1/verify calls per minute (its own bucket)")
    records_per_minute: int = Field(
        20, ge=1, description="POST /v1/records calls per minute: outputs rendered on a device, registered (own bucket)"
    )


DEFAULT_TIERS: dict[str, TierLimits] = {
    "free": TierLimits(
        requests_per_minute=60, styleembed_per_minute=10, images_per_month=100, max_active_jobs=2, verify_per_minute=20
    ),
    "pro": TierLimits(
        requests_per_minute=600,
        styleembed_per_minute=60,
        images_per_month=5000,
        max_active_jobs=8,
        verify_per_minute=120,
        records_per_minute=120,
    ),
}


class ServerSettings(Settings):
    """Everything ``tastemaker serve`` reads; each field is ``TASTEMAKER_<FIELD>`` in the environment."""

    dev_mode: bool = Field(False, description="allow the built-in secret (local development only)")
    secret_key: SecretStr = Field(SecretStr(DEV_SECRET), description="keys the audit chain; keep it stable")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite (WAL) in the data dir")
    ratelimit_storage_url: str = Field("memory://", description="limits storage: memory:// or redis://host:port")
    tiers: dict[str, TierLimits] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    # Request bodies: a whole request (all board images) and, separately, the core's per-image caps.
    max_request_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    max_pins_per_board: int = Field(500, ge=1)
    # Callers without a valid key: per client address and minute, then 429 (a valid key is never held back)
    unauthenticated_per_minute: int = Field(30, ge=1)
    # Jobs: an in-process pool with a bounded queue; "process" keeps dlib's GIL away from the API threads.
    job_workers: int = Field(1, ge=1, le=64)
    job_queue_size: int = Field(8, ge=0, le=10_000)
    job_executor: Literal["process", "thread"] = "process"
    # A generation still running after this is stopped and failed (code job_timeout; quota given back).
    job_timeout_seconds: float = Field(600.0, gt=0)
    # Queue mode (docs/deploy.md): with a PostgreSQL URL here, generations go through Procrastinate to
    # `tastemaker worker` processes instead of this process's pool; several API processes may then serve
    # (`tastemaker serve --workers N`). It needs TASTEMAKER_DATABASE_URL on PostgreSQL too.
    queue_url: str | None = Field(None, description="PostgreSQL URL of the job queue (Procrastinate); unset: embedded")
    queue_capacity: int = Field(100, ge=1, le=1_000_000, description="queued + running jobs of all accounts")
    queue_lease_seconds: float = Field(30.0, ge=1, le=3600, description="a worker's hold on a job, renewed by it")
    queue_heartbeat_seconds: float = Field(10.0, gt=0, le=600, description="worker heartbeat (Procrastinate)")
    queue_stalled_seconds: float = Field(30.0, gt=0, le=3600, description="no heartbeat this long: jobs retried")
    queue_sweep_seconds: float = Field(10.0, gt=0, le=600, description="how often workers look for lost jobs")
    queue_requeue_after_seconds: float = Field(30.0, gt=0, le=86_400, description="queued this long: queued again")
    queue_max_attempts: int = Field(3, ge=1, le=20, description="workers that may take one job before it fails")
    # Provenance checks (POST /v1/verify) run in a pool of their own, so a flood of them never delays anything
    # else: workers (lowest CPU priority), queued checks beyond them, checks in flight per account; JPEGs are
    # decoded reduced to about verify_decode_side px, and what is decoded is capped at verify_max_pixels.
    verify_workers: int = Field(1, ge=1, le=16)
    verify_queue_size: int = Field(4, ge=0, le=1000)
    verify_per_account: int = Field(1, ge=1, le=16)
    verify_decode_side: int = Field(2048, ge=256, le=8192)
    verify_max_pixels: int = Field(16_000_000, ge=65_536)
    # Reading a request (see tastemaker.api.server): its headers must arrive within the first, its body within
    # the second (counted from the end of the headers); then 408 and the connection is closed. An idle
    # kept-alive connection is closed after the third.
    request_header_timeout_seconds: float = Field(10.0, gt=0, le=600)
    request_body_timeout_seconds: float = Field(120.0, gt=0, le=86_400)
    keep_alive_timeout_seconds: int = Field(5, ge=1, le=600)
    max_wait_seconds: float = Field(60.0, ge=0, le=60)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    idempotency_ttl_hours: float = Field(24.0, gt=0)
    auto_migrate: bool = Field(True, description="bring the database schema up to date at startup")

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to SQLite in the data dir; ``postgresql://`` means psycopg 3."""
        url = self.database_url or f"sqlite:///{Path(self.data_dir) / 'tastemaker.db'}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    @property
    def blob_dir(self) -> Path:
        return Path(self.data_dir) / "blobs"

    @property
    def provenance_secret(self) -> str | None:
        """The secret the provenance store's keys (watermark key included) derive from: the deployment's secret
        key, or ``None`` with the built-in development secret (the store then keeps a random key of its own,
        never a public one)."""
        secret = self.secret_key.get_secret_value()
        return None if secret == DEV_SECRET else secret

    def check_queue(self) -> None:
        """Queue mode needs PostgreSQL for the queue and for the database (workers elsewhere share both)."""
        if self.queue_url is None:
            return
        if not self.queue_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ConfigurationError(
                "TASTEMAKER_QUEUE_URL must be a PostgreSQL URL (postgresql://user:password@host/db): the job queue "
                "is Procrastinate, on PostgreSQL"
            )
        if not self.db_url.startswith("postgresql"):
            raise ConfigurationError(
                "TASTEMAKER_QUEUE_URL is set but the database is SQLite: queue workers and several API processes "
                "share the database, so set TASTEMAKER_DATABASE_URL to a PostgreSQL URL too"
            )

    def check_secrets(self) -> None:
        """Refuse the built-in or a short secret outside dev mode (fail closed, before serving)."""
        secret = self.secret_key.get_secret_value()
        if self.dev_mode:
            return
        if secret == DEV_SECRET:
            raise ConfigurationError(
                "TASTEMAKER_SECRET_KEY is the built-in development secret; set it to a random value, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or set TASTEMAKER_DEV_MODE=1 "
                "on a development machine"
            )
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"TASTEMAKER_SECRET_KEY is {len(secret)} characters; use at least {MIN_SECRET_CHARS} random ones"
            )

    def tier(self, name: str) -> TierLimits:
        try:
            return self.tiers[name]
        except KeyError:
            raise ConfigurationError(
                f"tier {name!r} is not in the tier table (TASTEMAKER_TIERS has {', '.join(sorted(self.tiers))})"
            ) from None


def load_server_settings(**overrides: object) -> ServerSettings:
    """Settings from the environment, explicit overrides on top (CLI flags, tests)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return ServerSettings(**clean)  # type: ignore[arg-type]
