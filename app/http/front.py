"""What `/` answers API clients (app/http/webapp.py serves the web app there to browsers): a
small JSON answer that says where the API is, how to call it, and where its documentation
lives (`PROPINTEL_DOCS_URL`)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

EXAMPLE = '{ locality(name: "Newtown", postcode: "2042") { stats { salesCount medianPrice } } }'


def about_response(docs_url: str | None) -> JSONResponse:
    about: dict[str, Any] = {
        "service": "propintel: a GraphQL API over NSW property sales",
        "graphql": "/graphql",
        "usage": 'POST /graphql with Content-Type: application/json and a body {"query": ..., '
        '"variables": {...}}',
        "example": {"query": EXAMPLE},
        **({"docs": docs_url} if docs_url else {}),
    }
    return JSONResponse(about)
