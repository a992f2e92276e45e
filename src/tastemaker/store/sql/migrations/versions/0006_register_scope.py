"""The ``register`` key scope (``POST /v1/records``: register an output rendered on the person's device).

A key that had every scope keeps having every scope: it gains ``register``, so deleting an account (which needs
every scope) keeps working with it and nothing that worked stops working. Keys made with fewer scopes stay as
they are. The column's server default becomes every scope, ``register`` included.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: Frozen here on purpose: a migration must not change when the code's list of scopes grows.
BEFORE = "boards:read boards:write styleembed generate verify"
AFTER = "boards:read boards:write styleembed generate verify register"


def upgrade() -> None:
    op.execute(sa.text("UPDATE api_keys SET scopes = :after WHERE scopes = :before").bindparams(
        after=AFTER, before=BEFORE))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", existing_type=sa.String(200), existing_nullable=False, server_default=AFTER)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", existing_type=sa.String(200), existing_nullable=False, server_default=BEFORE)
    op.execute(sa.text("UPDATE api_keys SET scopes = :before WHERE scopes = :after").bindparams(
        after=AFTER, before=BEFORE))
    op.execute(sa.text("UPDATE api_keys SET scopes = trim(replace(replace(scopes, ' register', ''), 'register ', ''))"))
