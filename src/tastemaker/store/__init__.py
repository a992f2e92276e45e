"""The service's store: records (accounts, boards, jobs, ...) behind :class:`Store`, image bytes behind
:class:`BlobStore`. Both are protocols; :func:`open_store` opens the implementation in use — a relational
database (SQLite by default, PostgreSQL by URL; :mod:`.sql`, which needs the ``[server]`` extra) and a folder of
blobs (:class:`FilesystemBlobStore`). The protocols import without SQLAlchemy; the core library never uses them.

To add a backend, implement :class:`Store` and :class:`StoreSession` (:mod:`.protocol`) or :class:`BlobStore`
(:mod:`.blobs`); the contract tests are ``tests/api/test_store.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blobs import BlobStore, FilesystemBlobStore, sha256_hex
from .protocol import Store, StoreSession

if TYPE_CHECKING:
    from .sql import SqlStore


def open_store(url: str, blob_dir: Path | str) -> SqlStore:
    """The store at a database URL (``sqlite:///...`` or ``postgresql+psycopg://...``) with its blobs as files
    under ``blob_dir``. Nothing is migrated here: call :meth:`Store.upgrade` or :meth:`Store.check_schema`."""
    from .sql import SqlStore

    return SqlStore(url, FilesystemBlobStore(blob_dir))


def __getattr__(name: str) -> Any:
    if name == "SqlStore":  # the SQL implementation loads SQLAlchemy: only when asked for
        from .sql import SqlStore

        return SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BlobStore", "FilesystemBlobStore", "SqlStore", "Store", "StoreSession", "open_store", "sha256_hex"]
