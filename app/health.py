"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from db.engine import Database


async def healthz(_request: Request) -> JSONResponse:
    """Alive: the process answers HTTP. Never touches a dependency."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready: the database answers a trivial query."""
    db: Database = request.app.state.db
    try:
        await db.ping()
    except Exception as error:  # any failure means "not ready"; the reason is reported
        return JSONResponse(
            {
                "status": "unavailable",
                "database": {"status": "down", "error": type(error).__name__},
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": {"status": "up", "dialect": db.dialect}})
