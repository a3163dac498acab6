"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from db.engine import Database


async def healthz(_request: Request) -> JSONResponse:
    """Alive: the process answers HTTP. Never touches a dependency."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready: the database answers a trivial query. Also reports each guarded dependency's
    breaker and bulkhead (Redis being down does not make the API unready: it degrades)."""
    db: Database = request.app.state.db
    try:
        await db.ping()
    except Exception as error:  # any failure means "not ready"; the reason is reported
        return JSONResponse(
            {
                "status": "unavailable",
                "database": {"status": "down", "error": type(error).__name__},
                "dependencies": _dependencies(request),
            },
            status_code=503,
        )
    return JSONResponse(
        {
            "status": "ok",
            "database": {"status": "up", "dialect": db.dialect},
            "dependencies": _dependencies(request),
        }
    )


def _dependencies(request: Request) -> dict[str, object]:
    guarded = getattr(request.app.state, "dependencies", {})
    return {name: dependency.snapshot() for name, dependency in guarded.items()}
