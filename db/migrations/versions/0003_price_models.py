"""price models: the registry of trained models (with their artifacts) and training jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "price_models",
        sa.Column("version", Id, nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_from", sa.Date(), nullable=False),
        sa.Column("data_to", sa.Date(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("training_seconds", sa.Float(), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_price_models")),
    )
    # At most one active model.
    op.create_index(
        "ix_price_models_active",
        "price_models",
        ["active"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("activate", sa.Boolean(), nullable=False),
        sa.Column("requested_by", Id, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("model_version", Id, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        # 'running' while QUEUED or RUNNING, NULL after: unique, so one job runs at a time
        # even when several processes (uvicorn workers) start one at once.
        sa.Column("running_lock", sa.String(length=8), nullable=True),
        sa.UniqueConstraint("running_lock", name=op.f("uq_training_jobs_running_lock")),
        sa.CheckConstraint(
            "status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')",
            name=op.f("ck_training_jobs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )


def downgrade() -> None:
    op.drop_table("training_jobs")
    op.drop_index(
        "ix_price_models_active",
        table_name="price_models",
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    op.drop_table("price_models")
