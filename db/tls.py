"""PostgreSQL TLS: libpq's sslmode names, turned into what asyncpg takes."""

from __future__ import annotations

import ssl
from pathlib import Path


def asyncpg_ssl(mode: str | None, root_cert: Path | None) -> ssl.SSLContext | str | None:
    """None: asyncpg's default (libpq's `prefer`). verify-ca checks the chain only;
    verify-full the host name too; the other modes asyncpg understands by name."""
    if mode is None:
        return None
    if mode in ("verify-ca", "verify-full"):
        context = ssl.create_default_context(cafile=str(root_cert) if root_cert else None)
        context.check_hostname = mode == "verify-full"
        return context
    return mode
