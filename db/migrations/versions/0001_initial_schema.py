"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingested_files",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingested_files")),
        sa.UniqueConstraint("sha256", name=op.f("uq_ingested_files_sha256")),
    )
    op.create_table(
        "localities",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("postcode", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=3), nullable=False),
        sa.Column("district_code", sa.Text(), nullable=True),
        sa.Column("district", sa.Text(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_localities")),
        sa.UniqueConstraint("name", "postcode", name=op.f("uq_localities_name_postcode")),
    )
    op.create_table(
        "properties",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vg_property_id", sa.Integer(), nullable=False),
        sa.Column("strata_lot", sa.Text(), server_default="", nullable=False),
        sa.Column("district_code", sa.Text(), nullable=True),
        sa.Column("district", sa.Text(), nullable=True),
        sa.Column("property_name", sa.Text(), nullable=True),
        sa.Column("unit_number", sa.Text(), nullable=True),
        sa.Column("house_number", sa.Text(), nullable=True),
        sa.Column("street_name", sa.Text(), nullable=True),
        sa.Column(
            "locality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("postcode", sa.Text(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("zoning", sa.Text(), nullable=True),
        sa.Column("nature", sa.Text(), nullable=True),
        sa.Column("primary_purpose", sa.Text(), nullable=True),
        sa.Column("is_strata", sa.Boolean(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("last_sale_price", sa.BigInteger(), nullable=False),
        sa.Column("last_sale_date", sa.Date(), nullable=False),
        sa.Column("source_downloaded_at", sa.DateTime(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["locality_id"], ["localities.id"], name=op.f("fk_properties_locality_id_localities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_properties")),
        sa.UniqueConstraint(
            "vg_property_id", "strata_lot", name=op.f("uq_properties_vg_property_id_strata_lot")
        ),
    )
    op.create_index(
        "ix_properties_date",
        "properties",
        ["last_sale_date", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_properties_lat_lon",
        "properties",
        ["latitude", "longitude"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_properties_locality_date",
        "properties",
        ["locality_id", "last_sale_date", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_properties_locality_id",
        "properties",
        ["locality_id", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_properties_locality_price",
        "properties",
        ["locality_id", "last_sale_price", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_properties_price",
        "properties",
        ["last_sale_price", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "listings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "property_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("asking_price", sa.BigInteger(), nullable=True),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'UNDER_OFFER', 'SOLD', 'WITHDRAWN')", name="ck_listings_status"
        ),
        sa.ForeignKeyConstraint(
            ["property_id"], ["properties.id"], name=op.f("fk_listings_property_id_properties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listings")),
    )
    op.create_index(
        "ix_listings_property",
        "listings",
        ["property_id", sa.literal_column("listed_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "sales",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "property_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "locality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("is_strata", sa.Boolean(), nullable=False),
        sa.Column("district_code", sa.Text(), nullable=False),
        sa.Column("contract_date", sa.Date(), nullable=False),
        sa.Column("settlement_date", sa.Date(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("dealing_number", sa.Text(), nullable=False),
        sa.Column("sale_code", sa.Text(), nullable=True),
        sa.Column("interest_pct", sa.Float(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("zoning", sa.Text(), nullable=True),
        sa.Column("nature", sa.Text(), nullable=True),
        sa.Column("primary_purpose", sa.Text(), nullable=True),
        sa.Column("parcels_in_sale", sa.Integer(), nullable=False),
        sa.Column("is_market_sale", sa.Boolean(), nullable=False),
        sa.Column("non_market_reasons", sa.Text(), server_default="", nullable=False),
        sa.Column("downloaded_at", sa.DateTime(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["locality_id"], ["localities.id"], name=op.f("fk_sales_locality_id_localities")
        ),
        sa.ForeignKeyConstraint(
            ["property_id"], ["properties.id"], name=op.f("fk_sales_property_id_properties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales")),
        sa.UniqueConstraint(
            "property_id", "dealing_number", name=op.f("uq_sales_property_id_dealing_number")
        ),
    )
    op.create_index(
        "ix_sales_locality_market",
        "sales",
        ["locality_id", "contract_date"],
        unique=False,
        postgresql_where=sa.text("is_market_sale"),
        postgresql_include=["price", "area_m2", "is_strata"],
        sqlite_where=sa.text("is_market_sale"),
    )
    op.create_index(
        "ix_sales_property_newest",
        "sales",
        ["property_id", sa.literal_column("contract_date DESC"), sa.literal_column("id DESC")],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_sales_property_newest", table_name="sales")
    op.drop_index(
        "ix_sales_locality_market",
        table_name="sales",
        postgresql_where=sa.text("is_market_sale"),
        postgresql_include=["price", "area_m2", "is_strata"],
        sqlite_where=sa.text("is_market_sale"),
    )
    op.drop_table("sales")
    op.drop_index("ix_listings_property", table_name="listings")
    op.drop_table("listings")
    op.drop_index(
        "ix_properties_price",
        table_name="properties",
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_properties_locality_price",
        table_name="properties",
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_properties_locality_id",
        table_name="properties",
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_properties_locality_date",
        table_name="properties",
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_properties_lat_lon",
        table_name="properties",
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_properties_date",
        table_name="properties",
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("properties")
    op.drop_table("localities")
    op.drop_table("ingested_files")
