"""accounts: users, refresh tokens, API keys; row-level security on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OWNED_TABLES = ("refresh_tokens", "api_keys")

# Owner-scoped statements run as this role with `propintel.user_id` set for the transaction
# (db/repositories/accounts.py); its policies let it see and change only that user's rows,
# whatever the statement's WHERE clause says. Roles are cluster-wide: several databases of one
# cluster share it, hence the guarded CREATE.
OWNER_ROLE = "propintel_owner"


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="USER", nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("role IN ('USER', 'ADMIN')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family"])
    op.create_table(
        "api_keys",
        sa.Column("id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        _row_level_security()


def _row_level_security() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            CREATE ROLE {OWNER_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- made by another database of this cluster (or a concurrent migration)
        END
        $$;
        """
    )
    # The service's own login role must be able to SET ROLE to it.
    op.execute(f"GRANT {OWNER_ROLE} TO CURRENT_USER")
    for table in ("users", *OWNED_TABLES):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {OWNER_ROLE}")
        op.execute(f"GRANT USAGE ON SEQUENCE {table}_id_seq TO {OWNER_ROLE}")
        # ENABLE, not FORCE: the table owner (the service's login role) still reads by token
        # digest to authenticate; everything done on a user's behalf runs as OWNER_ROLE.
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    user_id = "NULLIF(current_setting('propintel.user_id', true), '')::bigint"
    op.execute(
        f"CREATE POLICY users_self ON users TO {OWNER_ROLE} "
        f"USING (id = {user_id}) WITH CHECK (id = {user_id})"
    )
    for table in OWNED_TABLES:
        op.execute(
            f"CREATE POLICY {table}_owner ON {table} TO {OWNER_ROLE} "
            f"USING (user_id = {user_id}) WITH CHECK (user_id = {user_id})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("users", *OWNED_TABLES):
            op.execute(f"REVOKE ALL ON {table} FROM {OWNER_ROLE}")
            op.execute(f"REVOKE ALL ON SEQUENCE {table}_id_seq FROM {OWNER_ROLE}")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_refresh_tokens_family", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_user_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("users")
