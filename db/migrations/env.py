"""Alembic environment: runs migrations over the async engine of DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import get_settings
from db.tables import metadata
from db.tls import asyncpg_ssl

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str) -> None:
    settings = get_settings()
    ssl = asyncpg_ssl(settings.db_sslmode, settings.db_sslrootcert)
    connect_args = {"ssl": ssl} if ssl is not None and url.startswith("postgresql") else {}
    engine = create_async_engine(url, connect_args=connect_args)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


url = config.attributes.get("database_url") or get_settings().database_url
connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_online(url))
