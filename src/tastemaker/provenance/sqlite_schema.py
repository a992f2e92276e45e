"""Versioned SQLite files: an ordered list of migration steps and ``PRAGMA user_version``.

The provenance log (:mod:`.ledger`) keeps its schema this way; any other hand-made SQLite file can (give it a
tuple of steps, and never edit a published step: add one).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..errors import LedgerError


def migrate_sqlite(db: sqlite3.Connection, steps: Sequence[Sequence[str]], *, what: str) -> int:
    """Bring a SQLite file (opened with ``isolation_level=None``) to version ``len(steps)``, in one transaction.

    Version ``n`` is the number of steps applied (``PRAGMA user_version``); the pending steps run in order and
    the version is stamped with them, so a crash leaves the old version or the new one. A file of a newer
    version than ``steps`` knows is refused (:class:`LedgerError`) and left untouched. Returns the version.
    """
    db.execute("BEGIN IMMEDIATE")  # one writer at a time: two processes opening an old file migrate it once
    try:
        have = int(db.execute("PRAGMA user_version").fetchone()[0])
        if have > len(steps):
            raise LedgerError(
                f"{what} has schema version {have}, newer than the {len(steps)} this Tastemaker knows: it was "
                "written by a newer Tastemaker; upgrade Tastemaker to read it (the file was not changed)"
            )
        for step in steps[have:]:
            for statement in step:
                db.execute(statement)
        if have < len(steps):
            db.execute(f"PRAGMA user_version = {len(steps)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(steps)
