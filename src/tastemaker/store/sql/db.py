"""Engines and sessions: SQLite (WAL) embedded by default, PostgreSQL (psycopg 3) by URL.

SQLite is tuned for a small server: write-ahead logging so readers never wait for the writer,
``synchronous=NORMAL`` (durable at checkpoints, the WAL recommendation), foreign keys enforced, and a
generous busy timeout so concurrent writers queue instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from ...errors import ConfigurationError
from ...media import make_private_dirs

SQLITE_BUSY_TIMEOUT_S = 30.0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cur.close()


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 in a 0700 folder before SQLite does (it would follow the umask, and
    its -wal and -shm files copy the main file's mode). The database names accounts and holds pins."""
    make_private_dirs(path.parent)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    os.chmod(path, 0o600)


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's folder. Unknown backends are a configuration error."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError: unparseable URL
        raise ConfigurationError(f"database URL {url!r} is not a valid SQLAlchemy URL ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_sqlite_file(Path(parsed.database).expanduser())
        engine = create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            pool_size=16,
            max_overflow=32,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ConfigurationError(f"database backend {backend!r} is not supported; use sqlite:/// or postgresql://")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (responses are built after committing)."""
    return sessionmaker(engine, expire_on_commit=False)
