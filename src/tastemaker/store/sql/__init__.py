"""The store on a relational database: SQLite (embedded, the default) or PostgreSQL (by URL), through
SQLAlchemy, with the schema migrated by Alembic (:mod:`.migrate`; the scripts are in ``migrations/``).

:class:`SqlStore` is the :class:`~tastemaker.store.protocol.Store` the service runs on; its sessions are
:class:`~.session.SqlSession` s. ``engine`` and :meth:`SqlStore.downgrade` are this backend's own (tests,
operators), not part of the protocol.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ...errors import ConfigurationError
from ..blobs import BlobStore
from .db import create_db_engine, session_factory
from .migrate import current_revision, downgrade, head_revision, upgrade
from .session import SqlSession


class SqlStore:
    """One database and one blob store, opened together."""

    def __init__(self, url: str, blobs: BlobStore) -> None:
        self.url = url
        self.engine: Engine = create_db_engine(url)
        self._sessions: sessionmaker[Session] = session_factory(self.engine)
        self._blobs = blobs

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    def session(self) -> SqlSession:
        return SqlSession(self._sessions())

    def upgrade(self, revision: str = "head") -> str | None:
        return upgrade(self.engine, revision)

    def downgrade(self, revision: str) -> str | None:
        return downgrade(self.engine, revision)

    def schema_revision(self) -> str | None:
        return current_revision(self.engine)

    def check_schema(self) -> None:
        have, want = self.schema_revision(), head_revision()
        if have != want:
            raise ConfigurationError(
                f"database schema is at revision {have or 'none'}, this Tastemaker needs {want}; "
                "run `tastemaker db upgrade` (or set TASTEMAKER_AUTO_MIGRATE=1)"
            )

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("select 1"))

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["SqlSession", "SqlStore", "head_revision"]
