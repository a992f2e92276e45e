"""API key scopes; cached /v1/styleembed bodies from before the release carried nothing exact are dropped.

Every existing key gets every scope (the server default), so nothing that worked stops working; new keys
get the scopes they are created with (``tastemaker keys create --scope ...``). The cached styleembed
bodies made before this revision held the exact profile's hash and silhouette; they are cleared, so the
next call publishes a private release that does not.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Frozen here on purpose: a migration must not change when the code's list of scopes grows.
ALL_SCOPES_0003 = "boards:read boards:write styleembed generate verify"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(200), nullable=False, server_default=ALL_SCOPES_0003))
    op.execute(sa.text("UPDATE boards SET styleembed_json = NULL"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
