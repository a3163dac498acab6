"""`/`, until there is a web app: outside prod a redirect to GraphiQL (`/graphql`); in prod,
where there is no GraphiQL and no introspection, a small JSON answer that says where the
API is, how to call it, and where its documentation lives (`PROPINTEL_DOCS_URL`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

EXAMPLE = '{ locality(name: "Newtown", postcode: "2042") { stats { salesCount medianPrice } } }'


def front_door(
    *, production: bool, docs_url: str | None
) -> Callable[[Request], Awaitable[Response]]:
    about: dict[str, Any] = {
        "service": "propintel: a GraphQL API over NSW property sales",
        "graphql": "/graphql",
        "usage": 'POST /graphql with Content-Type: application/json and a body {"query": ..., '
        '"variables": {...}}',
        "example": {"query": EXAMPLE},
        **({"docs": docs_url} if docs_url else {}),
    }

    async def front(request: Request) -> Response:
        if not production:
            query = request.url.query
            return RedirectResponse("/graphql" + (f"?{query}" if query else ""), status_code=307)
        return JSONResponse(about)

    return front
