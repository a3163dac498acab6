"""TLS settings reach the drivers: PostgreSQL sslmode (asyncpg) and rediss:// (redis-py)."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from app.cache.redis_client import redis_cache as _redis_cache
from db.tls import asyncpg_ssl


def test_sslmode_names_become_what_asyncpg_takes() -> None:
    assert asyncpg_ssl(None, None) is None
    assert asyncpg_ssl("require", None) == "require"
    assert asyncpg_ssl("disable", None) == "disable"
    full = asyncpg_ssl("verify-full", Path(certifi.where()))
    assert isinstance(full, ssl.SSLContext)
    assert full.check_hostname
    assert full.verify_mode is ssl.CERT_REQUIRED
    chain_only = asyncpg_ssl("verify-ca", None)
    assert isinstance(chain_only, ssl.SSLContext)
    assert not chain_only.check_hostname
    assert chain_only.verify_mode is ssl.CERT_REQUIRED


def test_rediss_urls_turn_tls_on() -> None:
    plain = _redis_cache("redis://127.0.0.1:6379/0")
    assert plain.client.connection_pool.connection_class.__name__ == "Connection"
    secure = _redis_cache(f"rediss://cache.example:6380/2?ssl_ca_certs={certifi.where()}")
    pool = secure.client.connection_pool
    assert pool.connection_class.__name__ == "SSLConnection"
    assert pool.connection_kwargs["ssl_ca_certs"] == certifi.where()
    assert pool.connection_kwargs["port"] == 6380


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_a_server_without_tls_is_refused_when_tls_is_required(mode: str) -> None:
    """The local PostgreSQL speaks no TLS: requiring it must fail the connection, which shows
    the setting reaches the driver (rather than being ignored)."""
    script = (
        "import asyncio\n"
        "from app.settings import Settings\n"
        "from db.engine import Database, create_engine\n"
        "from db.tls import asyncpg_ssl\n"
        "s = Settings()\n"
        "ssl = asyncpg_ssl(s.db_sslmode, s.db_sslrootcert)\n"
        "db = Database(create_engine(s.database_url, ssl=ssl), ssl=ssl)\n"
        "asyncio.run(db.ping())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
            "PROPINTEL_DB_SSLMODE": mode,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SSL" in result.stderr or "ssl" in result.stderr
