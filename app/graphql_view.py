"""The HTTP endpoint of the schema: builds each request's context, gives every error a code."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from app.context import Context
from app.errors import ErrorCode
from app.settings import Profile, Settings
from db.engine import Database
from loaders import create_loaders

logger = logging.getLogger("propintel.graphql")


def error_code(error: GraphQLError) -> ErrorCode:
    """The code of an error that did not bring one: where in the pipeline it arose."""
    if error.original_error is not None:
        return ErrorCode.INTERNAL_SERVER_ERROR
    if error.path is not None:
        return ErrorCode.INTERNAL_SERVER_ERROR
    if error.message.startswith("Syntax Error"):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    return ErrorCode.GRAPHQL_VALIDATION_FAILED


class PropintelGraphQL(GraphQL[Context, None]):
    def __init__(self, *, db: Database, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db
        self.settings = settings

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(
            request=request,  # type: ignore[arg-type]
            response=response if isinstance(response, Response) else None,
            db=self.db,
            settings=self.settings,
            loaders=create_loaders(self.db),
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [self._format_error(error) for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response

    def _format_error(self, error: GraphQLError) -> dict[str, Any]:
        formatted: dict[str, Any] = dict(error.formatted)
        extensions = dict(formatted.get("extensions") or {})
        if "code" not in extensions:
            code = error_code(error)
            extensions["code"] = code.value
            if code is ErrorCode.INTERNAL_SERVER_ERROR:
                logger.error("unexpected error in %s", error.path, exc_info=error.original_error)
                if self.settings.profile is Profile.PROD:
                    formatted["message"] = "Unexpected error."
        formatted["extensions"] = extensions
        return formatted
