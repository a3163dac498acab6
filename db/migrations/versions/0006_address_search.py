"""address search: a normalised search key per property, and indexes made for searching it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:40:00

`properties.search_key` ("2 73 smith st newtown nsw 2042", db/repositories/search.py) is
written by the ingest's upsert and by updateProperty; this fills it for the rows already
there. PostgreSQL: GIN indexes on `to_tsvector('simple', ...)` of the property key and of a
locality's key expression. SQLite: FTS5 tables kept by triggers (an external-content table
over `properties.search_key`; a contentless one for localities, whose key the triggers
compute).

The key expressions are imported, not copied: a change to them needs a migration that
rewrites the keys (and, on SQLite, recreates the triggers) anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.search_key import LOCALITY_KEY_SQL, key_sql, property_key_sql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FILL_PROPERTIES = f"""
UPDATE properties SET search_key = {property_key_sql("properties", "l")}
FROM localities l WHERE l.id = properties.locality_id
"""


def _new_locality_key(row: str) -> str:
    return key_sql(f"{row}.name", f"{row}.state", f"{row}.postcode")


_SQLITE = (
    "CREATE VIRTUAL TABLE property_search USING fts5("
    "search_key, content='properties', content_rowid='id')",
    """CREATE TRIGGER property_search_insert AFTER INSERT ON properties BEGIN
        INSERT INTO property_search (rowid, search_key) VALUES (new.id, new.search_key);
    END""",
    """CREATE TRIGGER property_search_delete AFTER DELETE ON properties BEGIN
        INSERT INTO property_search (property_search, rowid, search_key)
        VALUES ('delete', old.id, old.search_key);
    END""",
    """CREATE TRIGGER property_search_update AFTER UPDATE OF search_key ON properties BEGIN
        INSERT INTO property_search (property_search, rowid, search_key)
        VALUES ('delete', old.id, old.search_key);
        INSERT INTO property_search (rowid, search_key) VALUES (new.id, new.search_key);
    END""",
    "INSERT INTO property_search (property_search) VALUES ('rebuild')",
    "CREATE VIRTUAL TABLE locality_search USING fts5(search_key, content='')",
    f"""CREATE TRIGGER locality_search_insert AFTER INSERT ON localities BEGIN
        INSERT INTO locality_search (rowid, search_key)
        VALUES (new.id, {_new_locality_key("new")});
    END""",
    f"""CREATE TRIGGER locality_search_update AFTER UPDATE OF name, state, postcode
    ON localities BEGIN
        INSERT INTO locality_search (locality_search, rowid, search_key)
        VALUES ('delete', old.id, {_new_locality_key("old")});
        INSERT INTO locality_search (rowid, search_key)
        VALUES (new.id, {_new_locality_key("new")});
    END""",
    f"""CREATE TRIGGER locality_search_delete AFTER DELETE ON localities BEGIN
        INSERT INTO locality_search (locality_search, rowid, search_key)
        VALUES ('delete', old.id, {_new_locality_key("old")});
    END""",
    f"INSERT INTO locality_search (rowid, search_key) SELECT id, {LOCALITY_KEY_SQL} "
    "FROM localities",
)


def upgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    op.add_column("properties", sa.Column("search_key", sa.Text(), nullable=True))
    op.execute(_FILL_PROPERTIES)
    if postgresql:
        # The index build sorts every key: in memory (the full data's 2.7 million keys).
        op.execute("SET LOCAL maintenance_work_mem = '512MB'")
        op.execute(
            "CREATE INDEX ix_properties_search ON properties "
            "USING gin (to_tsvector('simple'::regconfig, search_key)) WHERE deleted_at IS NULL"
        )
        op.execute(
            "CREATE INDEX ix_localities_search ON localities "
            f"USING gin (to_tsvector('simple'::regconfig, {LOCALITY_KEY_SQL}))"
        )
    else:
        for statement in _SQLITE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_localities_search")
        op.execute("DROP INDEX IF EXISTS ix_properties_search")
    else:
        for name in (
            "property_search_insert",
            "property_search_delete",
            "property_search_update",
            "locality_search_insert",
            "locality_search_update",
            "locality_search_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS property_search")
        op.execute("DROP TABLE IF EXISTS locality_search")
    with op.batch_alter_table("properties") as batch:
        batch.drop_column("search_key")
