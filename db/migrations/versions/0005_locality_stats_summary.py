"""locality stats summary: each locality's default-window statistics, valid at a version

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 19:10:00

`localities.stats_version` moves in the transaction of every write that changes a locality's
market sales; a summary row serves only while its `stats_version` equals the locality's, so a
figure is never stale (db/repositories/stats.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "localities",
        sa.Column("stats_version", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_table(
        "locality_stats_summary",
        sa.Column("locality_id", Id, nullable=False),
        sa.Column("stats_version", sa.BigInteger(), nullable=False),
        sa.Column("sales_count", sa.BigInteger(), nullable=False),
        sa.Column("median_price", sa.Float(), nullable=True),
        sa.Column("p25_price", sa.Float(), nullable=True),
        sa.Column("p75_price", sa.Float(), nullable=True),
        sa.Column("median_price_per_m2", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["locality_id"],
            ["localities.id"],
            name=op.f("fk_locality_stats_summary_locality_id_localities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("locality_id", name=op.f("pk_locality_stats_summary")),
    )


def downgrade() -> None:
    op.drop_table("locality_stats_summary")
    with op.batch_alter_table("localities") as batch:
        batch.drop_column("stats_version")
