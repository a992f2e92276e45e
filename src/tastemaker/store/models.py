"""Legacy spelling for the job runner (``tastemaker.worker``): import these from :mod:`tastemaker.store.records`
instead (the tables themselves are :mod:`tastemaker.store.sql.models`). Delete once nothing imports it."""

from __future__ import annotations

from .records import Job, utcnow

__all__ = ["Job", "utcnow"]
