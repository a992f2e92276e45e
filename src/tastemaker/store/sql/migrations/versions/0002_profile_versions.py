"""Profile versions: a board's taste profile as feedback changes it (``POST /v1/feedback``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "profile_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("board_id", sa.String(32), nullable=False),
        sa.Column("board_revision", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile_hash", sa.String(64), nullable=False),
        sa.Column("profile_json", sa.Text(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_profile_versions_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["board_id"], ["boards.id"], name=op.f("fk_profile_versions_board_id_boards"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_versions")),
        sa.UniqueConstraint("board_id", "version", name="uq_profile_versions_board_version"),
    )
    op.create_index(op.f("ix_profile_versions_account_id"), "profile_versions", ["account_id"], unique=False)
    op.create_index(op.f("ix_profile_versions_board_id"), "profile_versions", ["board_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_profile_versions_board_id"), table_name="profile_versions")
    op.drop_index(op.f("ix_profile_versions_account_id"), table_name="profile_versions")
    op.drop_table("profile_versions")
