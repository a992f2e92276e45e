"""Helpers the migration scripts share: constraint and index names by the models' naming convention
(``pk_<table>``, ``fk_<table>_<col>_<ref table>``, ``ix_<table>_<col>``), and the UTC timestamp type.

Migrations must not change once released; these helpers only spell names and types the convention already
fixes, so a script that uses them writes the same schema forever.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

UTC = sa.DateTime(timezone=True)


def pk(table: str, *cols: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*cols, name=op.f(f"pk_{table}"))


def fk(table: str, col: str, ref: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    ref_table = ref.split(".")[0]
    return sa.ForeignKeyConstraint([col], [ref], name=op.f(f"fk_{table}_{col}_{ref_table}"), ondelete=ondelete)


def index(table: str, col: str, name: str | None = None) -> None:
    op.create_index(name or op.f(f"ix_{table}_{col}"), table, [col], unique=False)


def drop_index(table: str, col: str) -> None:
    op.drop_index(op.f(f"ix_{table}_{col}"), table_name=table)
