"""The service's store: a relational database (SQLite by default, PostgreSQL by URL) plus a
content-addressed blob folder. The core library never imports this package.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigurationError
from .blobs import BlobStore, sha256_hex
from .db import create_db_engine, session_factory
from .migrate import current_revision, head_revision, upgrade


class Store:
    """One database and one blob folder, opened together."""

    def __init__(self, url: str, blob_dir: Path | str) -> None:
        self.url = url
        self.engine: Engine = create_db_engine(url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.blobs = BlobStore(blob_dir)

    def session(self) -> Session:
        return self.sessions()

    def upgrade(self) -> str | None:
        """Run pending migrations; returns the schema revision now in place."""
        return upgrade(self.engine)

    def check_schema(self) -> None:
        """Refuse to serve from a database whose schema is not the one this code expects."""
        have, want = current_revision(self.engine), head_revision()
        if have != want:
            raise ConfigurationError(
                f"database schema is at revision {have or 'none'}, this Tastemaker needs {want}; "
                "run `tastemaker db upgrade` (or set TASTEMAKER_AUTO_MIGRATE=1)"
            )

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["BlobStore", "Store", "sha256_hex"]
