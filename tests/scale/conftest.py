"""The store fixtures of the service tests (SQLite always, PostgreSQL when its URL is set), for the lease tests."""

from ..api.conftest import db_url, pg_database, store  # noqa: F401 - fixtures shared with tests/api
