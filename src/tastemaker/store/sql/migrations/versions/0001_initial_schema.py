"""Initial schema: accounts, API keys, boards and pins, jobs and their images, idempotency keys, usage,
and the hash-chained audit log with its head.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tastemaker.store.sql.migrations.schema import UTC, fk, index, pk

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        pk("accounts", "id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_used_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        fk("api_keys", "account_id", "accounts.id"),
        pk("api_keys", "id"),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    index("api_keys", "account_id")

    op.create_table(
        "boards",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("profile_revision", sa.Integer(), nullable=True),
        sa.Column("profile_hash", sa.String(64), nullable=True),
        sa.Column("profile_json", sa.Text(), nullable=True),
        sa.Column("styleembed_json", sa.Text(), nullable=True),
        fk("boards", "account_id", "accounts.id"),
        pk("boards", "id"),
    )
    index("boards", "account_id")

    op.create_table(
        "pins",
        sa.Column("board_id", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("saves", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("dwell_seconds", sa.Float(), nullable=False),
        sa.Column("pinned_at", UTC, nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        fk("pins", "board_id", "boards.id"),
        pk("pins", "board_id", "sha256"),
    )
    index("pins", "sha256", "ix_pins_sha256")

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("board_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("n_images", sa.Integer(), nullable=False),
        sa.Column("profile_hash", sa.String(64), nullable=False),
        sa.Column("selfie_sha256", sa.String(64), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("usage_period", sa.String(7), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        fk("jobs", "account_id", "accounts.id"),
        fk("jobs", "board_id", "boards.id", ondelete="SET NULL"),
        pk("jobs", "id"),
    )
    index("jobs", "account_id")
    index("jobs", "board_id")
    index("jobs", "status")

    op.create_table(
        "job_images",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("k", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        fk("job_images", "job_id", "jobs.id"),
        pk("job_images", "job_id", "k"),
    )
    index("job_images", "sha256", "ix_job_images_sha256")

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("resource_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        fk("idempotency_keys", "account_id", "accounts.id"),
        pk("idempotency_keys", "id"),
        sa.UniqueConstraint("account_id", "key", name="uq_idempotency_keys_account_key"),
    )

    op.create_table(
        "usage",
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("generations", sa.Integer(), nullable=False),
        sa.Column("styleembed", sa.Integer(), nullable=False),
        fk("usage", "account_id", "accounts.id"),
        pk("usage", "account_id", "period"),
    )

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("objects", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        pk("audit_log", "seq"),
    )
    index("audit_log", "account_id")

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        pk("audit_head", "id"),
    )
    # The genesis head: an empty chain. Its MAC is empty because migrations do not know the secret;
    # the first append replaces it with a keyed one.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS, "mac": ""}])


def downgrade() -> None:
    for table in (
        "audit_head",
        "audit_log",
        "usage",
        "idempotency_keys",
        "job_images",
        "jobs",
        "pins",
        "boards",
        "api_keys",
        "accounts",
    ):
        op.drop_table(table)
