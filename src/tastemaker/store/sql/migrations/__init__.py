"""Alembic migrations for the service database (shipped inside the package, run by ``store.migrate``)."""
