"""Fixtures for the service tests: database backends (SQLite always; PostgreSQL when
``TASTEMAKER_TEST_POSTGRES_URL`` is set — ``.ci/services.sh`` starts one on loopback), apps on temp
databases, API keys, and the demo board as upload parts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text

import tastemaker.jobs.tasks as tasks
from tastemaker.api.admin import issue_key
from tastemaker.api.app import create_app
from tastemaker.api.settings import ServerSettings, TierLimits
from tastemaker.store import SqlStore, open_store

PG_ENV = "TASTEMAKER_TEST_POSTGRES_URL"
REDIS_ENV = "TASTEMAKER_TEST_REDIS_URL"
DEMO = Path(__file__).resolve().parents[2] / "src" / "tastemaker" / "data" / "demo"
SECRET = "test-secret-" + "x" * 40

#: Generous limits so shared-app tests never trip them; the limit tests use "tight".
TEST_TIERS = {
    "free": TierLimits(
        requests_per_minute=10_000, styleembed_per_minute=10_000, images_per_month=10_000, max_active_jobs=50
    ),
    "pro": TierLimits(
        requests_per_minute=10_000, styleembed_per_minute=10_000, images_per_month=10_000, max_active_jobs=50
    ),
    "tight": TierLimits(requests_per_minute=5, styleembed_per_minute=2, images_per_month=2, max_active_jobs=1),
}


# Read once at import: the autouse isolation fixture removes TASTEMAKER_* variables before each test.
_PG_URL = os.environ.get(PG_ENV)
REDIS_URL = os.environ.get(REDIS_ENV)


def _pg_url() -> str | None:
    url = _PG_URL
    if not url:
        return None
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of our own for this test session (and xdist worker), dropped at the end."""
    base = _pg_url()
    if base is None:
        pytest.skip(f'PostgreSQL tests need {PG_ENV} (eval "$(.ci/services.sh)" starts a server on loopback)')
    host = base.split("@")[-1].split("/")[0].split(":")[0]
    assert host in ("127.0.0.1", "localhost", "::1"), f"tests only touch loopback databases, not {host}"
    name = f"tm_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_pg(url: str) -> None:
    """An empty database for the next test: truncate every table (fast), or drop the schema if a test
    left it half-migrated. Migrations then bring it to head either way."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
            if tables:
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            if "audit_head" in tables:
                conn.execute(text("INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, 0, :h, '')"), {"h": "0" * 64})
    except Exception:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_database")
    _reset_pg(url)
    return url


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    s = open_store(db_url, tmp_path / "blobs")
    s.upgrade()
    yield s
    s.dispose()


def make_settings(tmp_path: Path, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data",
        secret_key=SECRET,
        job_executor="thread",
        job_workers=1,
        job_queue_size=4,
        guard_workers=0,
        tiers=TEST_TIERS,
        max_image_pixels=4_000_000,
        max_request_bytes=5_000_000,
        shutdown_grace_seconds=10.0,
    )
    values.update(overrides)
    return ServerSettings(**values)


@dataclass
class Api:
    """A running app (lifespan entered) and helpers to call it as different accounts."""

    client: TestClient
    settings: ServerSettings

    @property
    def services(self) -> Any:
        return self.client.app.state.services  # type: ignore[attr-defined]

    def key(self, tier: str = "free", name: str = "tester") -> dict[str, str]:
        issued = issue_key(self.services.store, self.services.audit, self.settings, name=name, tier=tier)
        return {"Authorization": f"Bearer {issued.key}"}


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Build apps on temp databases; every app built is shut down at the end of the test."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> Api:
        settings = make_settings(tmp_path, **overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return Api(client, settings)

    yield build
    for c in reversed(clients):
        c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app for the many tests that need no special settings (SQLite, thread executor)."""
    settings = make_settings(tmp_path_factory.mktemp("shared"))
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


# ------------------------------------------------------------------------------------------ demo data


def demo_pins() -> list[dict[str, Any]]:
    rows = list(csv.DictReader(io.StringIO((DEMO / "board" / "pins.csv").read_text())))
    return [
        {
            "image": r["image"],
            "saves": int(r["saves"]),
            "clicks": int(r["clicks"]),
            "dwell_seconds": float(r["dwell_seconds"]),
            "pinned_at": r["pinned_at"],
            "title": r["title"],
            "tags": [t for t in r["tags"].split(";") if t],
        }
        for r in rows
    ]


def board_parts(names: list[str] | None = None) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = sorted((DEMO / "board").glob("*.jpg"))
    return [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in files if names is None or p.name in names]


def upload_board(api: Api, headers: dict[str, str], name: str = "demo", names: list[str] | None = None) -> dict:
    pins = [p for p in demo_pins() if names is None or p["image"] in names]
    r = api.client.post(
        "/v1/boards", data={"name": name, "pins": json.dumps(pins)}, files=board_parts(names), headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="session")
def selfie_bytes() -> bytes:
    return (DEMO / "selfie.jpg").read_bytes()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def generate(api: Api, headers: dict[str, str], selfie: bytes, *, wait: int | None = 30, **fields: Any) -> Any:
    """POST /v1/generations as multipart (n=1, 256 px, seed 3 unless overridden); waits up to ``wait`` s."""
    data = {"consent": "true", "n": "1", "size": "256", "seed": "3", **{k: str(v) for k, v in fields.items()}}
    h = dict(headers)
    if wait is not None:
        h["Prefer"] = f"wait={wait}"
    return api.client.post("/v1/generations", data=data, files={"selfie": ("me.jpg", selfie, "image/jpeg")}, headers=h)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_api(request: pytest.FixtureRequest, tmp_path: Path, make_api: Callable[..., Api]) -> Api:
    """An app on a fresh database of each backend (the PostgreSQL case skips without a server)."""
    if request.param == "sqlite":
        return make_api()
    url: str = request.getfixturevalue("pg_database")
    _reset_pg(url)
    return make_api(database_url=url)


def sse_events(lines: Iterator[str]) -> list[dict[str, Any]]:
    """The server-sent events of a stream's lines, each ``{"event": name, "data": parsed JSON}``."""
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    for line in lines:
        if line.startswith("event: "):
            event["event"] = line[7:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and event:
            events.append(event)
            event = {}
    return events


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every generation waits (thread executor) until the returned event is set, then fails without rendering:
    the tests that use it cancel the job first, so its result is dropped anyway."""
    release = threading.Event()

    def wait_then_fail(*args: Any, **kw: Any) -> tasks.Outcome:
        release.wait(20)
        return ("error", "InternalError", "internal_error", "held by the test", None)

    monkeypatch.setattr(tasks, "task_generate", wait_then_fail)
    yield release
    release.set()
