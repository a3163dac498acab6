"""Sending GraphQL over an httpx client and reading the answer."""

from __future__ import annotations

from typing import Any

import httpx


class GraphQLResponse:
    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        self.response = response
        self.body: dict[str, Any] = response.json()
        self.data: Any = self.body.get("data")
        self.errors: list[dict[str, Any]] = self.body.get("errors") or []
        self.statements: int | None = (self.body.get("extensions") or {}).get("sqlStatements")

    def ok(self) -> Any:
        assert not self.errors, self.errors
        return self.data

    def error_codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]


async def gql(client: httpx.AsyncClient, query: str, **variables: Any) -> GraphQLResponse:
    """POSTs `query` with `variables`; a `headers` variable (a dict) is sent as HTTP headers."""
    headers = variables.pop("headers", None) or {}
    return GraphQLResponse(
        await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    )


async def post(
    client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> httpx.Response:
    """POSTs `query` with `variables` and returns the HTTP response as it came (any status)."""
    return await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
    )


def codes(body: dict[str, Any]) -> list[str]:
    """The error codes of a response body, in order."""
    return [error["extensions"]["code"] for error in body.get("errors") or []]
