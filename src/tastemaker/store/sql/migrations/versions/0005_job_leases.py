"""Jobs run by queue workers (``TASTEMAKER_QUEUE_URL``): a lease on each running job, and its sealed input.

``jobs`` gains the lease a worker holds while it runs a job (``lease_owner``, ``lease_expires_at``, renewed
by its heartbeat), how many workers have taken it (``attempts``), and ``staged``: the outputs of a finished
render whose provenance records are being logged, so a worker that takes the job over after a crash logs
exactly those records and none twice. ``job_inputs`` holds what a job needs that the database does not
otherwise keep — the selfie among it — encrypted, only until the job ends (see :mod:`tastemaker.jobs.sealed`).
The embedded default (one process, in-process pool) leaves all of it empty.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tastemaker.store.sql.migrations.schema import UTC, fk, pk

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", UTC, nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("staged", sa.JSON(), nullable=True))
    op.create_table(
        "job_inputs",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        fk("job_inputs", "job_id", "jobs.id"),
        pk("job_inputs", "job_id"),
    )


def downgrade() -> None:
    op.drop_table("job_inputs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("staged")
        batch.drop_column("attempts")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
