"""Web app sessions: a browser signed in with an API key (``tastemaker serve`` at ``/``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tastemaker.store.sql.migrations.schema import UTC, drop_index, fk, index, pk

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        fk("web_sessions", "account_id", "accounts.id"),
        fk("web_sessions", "key_id", "api_keys.id"),
        pk("web_sessions", "id"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    index("web_sessions", "account_id")
    index("web_sessions", "key_id")


def downgrade() -> None:
    drop_index("web_sessions", "key_id")
    drop_index("web_sessions", "account_id")
    op.drop_table("web_sessions")
