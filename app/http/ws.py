"""graphql-transport-ws on /graphql: Strawberry's handler, with our rules.

- Only subscriptions: the protocol lets a client send queries and mutations over the socket
  too, where the gate (rate limits, query limits, CSRF rules) never sees them; they are
  refused (`BAD_REQUEST`), to be sent as HTTP requests.
- A subscription's document passes the gate's query limits for the principal's role (depth,
  cost, ...: every event runs it), else `QUERY_TOO_COMPLEX` as over HTTP.
- Credentials: the socket closes (4403) when its access token expires, and when its API key
  is found revoked (checked every `credential_recheck_s`): a long-lived socket must not
  outlive what let it in. Clients of graphql-ws reconnect on 4403 with fresh
  connectionParams, and catch up with `after:`.
- Errors: over HTTP every error gets `extensions.code` and prod hides unexpected messages
  (app/http/view.py `process_result`); Strawberry's websocket handler sends graphql-core's
  formatted errors as they are. This handler applies the same rules to the errors of `next`
  and `error` messages, so a subscriber sees what an HTTP client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any, cast

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)

from app.auth.identify import AuthenticationFailed
from app.auth.principal import Via
from app.auth.tokens import InvalidToken
from app.context import Context
from app.errors import ErrorCode
from app.graphql.query_limits import QueryAnalyzer
from app.settings import Profile
from app.telemetry import metrics
from app.telemetry.labels import Children
from app.telemetry.operations import OperationNames

logger = logging.getLogger("propintel.graphql")

LIMIT_MESSAGE = "Subscription limit reached"
ONLY_SUBSCRIPTIONS = (
    "Only subscriptions run over this websocket: send queries and mutations as HTTP requests "
    "to /graphql."
)
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
_requests = Children(metrics.graphql_requests)
_errors = Children(metrics.graphql_errors)


def credential_headers(params: dict[str, Any]) -> dict[str, str]:
    """connection_init's payload as the headers `Authenticator.identify` reads."""
    return {
        name.lower(): value
        for name, value in params.items()
        if name.lower() in ("authorization", "x-api-key") and isinstance(value, str)
    }


class SubscriptionHandler(BaseGraphQLTransportWSHandler[Context, None]):
    credential_recheck_s = 30.0
    """How often an API key's socket checks the key is still valid."""
    _watch: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._watch is None:
            self._watch = asyncio.create_task(self._watch_credential())

    async def shutdown(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        await super().shutdown()

    async def _watch_credential(self) -> None:
        principal = self.context.principal
        headers = credential_headers(self.context.connection_params or {})
        view: Any = self.view
        if principal.via is Via.ACCESS_TOKEN:
            token = headers.get("authorization", "").partition(" ")[2].strip()
            try:
                expires_at = view.accounts.tokens.verify(token).expires_at
            except InvalidToken:
                expires_at = datetime.now(UTC)
            await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
            await self._close("Forbidden: the access token expired")
        elif principal.via is Via.API_KEY:
            while True:
                await asyncio.sleep(self.credential_recheck_s)
                try:
                    await view.accounts.authenticator.identify(headers, None)
                except AuthenticationFailed:
                    await self._close("Forbidden: the API key was revoked")
                    return
                except Exception:  # cannot check now (the database is away): keep it
                    logger.warning("API key recheck failed", exc_info=True)

    async def _close(self, reason: str) -> None:
        with contextlib.suppress(Exception):  # already closed
            await self.websocket.close(code=4403, reason=reason)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        refusal = self._refusal(message) if self.connection_acknowledged else None
        if self.connection_acknowledged:
            self._count(message, refusal)
        if refusal is not None:
            # Never registered as an operation: the id stays free, nothing runs.
            error = {"id": message["id"], "type": "error", "payload": [refusal]}
            await self.send_message(cast(Message, error))
            return
        await super().handle_subscribe(message)

    def _count(self, message: SubscribeMessage, refusal: dict[str, Any] | None) -> None:
        """Each subscription once, when it is asked for: admitted (ok) or refused (its
        error's code is counted as it is sent, as every error of `next` and `error` is)."""
        payload: Any = message.get("payload")
        name = payload.get("operationName") if isinstance(payload, dict) else None
        query = payload.get("query") if isinstance(payload, dict) else None
        analyzer: QueryAnalyzer | None = getattr(self.view, "analyzer", None)
        if not isinstance(name, str) and isinstance(query, str) and analyzer is not None:
            chosen = analyzer.operation(query, None)  # the limits' cached parse
            name = chosen.name.value if chosen is not None and chosen.name is not None else None
        names: OperationNames = self.view.operation_names  # type: ignore[attr-defined]
        label = names.label(name if isinstance(name, str) else None)
        _requests("subscription", label, "ok" if refusal is None else "rejected").inc()

    def _refusal(self, message: SubscribeMessage) -> dict[str, Any] | None:
        payload: Any = message.get("payload")
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, str):
            return None  # malformed: Strawberry closes the socket (4400)
        name = payload.get("operationName")
        name = name if isinstance(name, str) else None
        try:
            operation = get_operation_ast(parse(query), name)
        except GraphQLError:
            return None  # a syntax error: Strawberry closes the socket with it (4400)
        if operation is not None and operation.operation is not OperationType.SUBSCRIPTION:
            return {"message": ONLY_SUBSCRIPTIONS, "extensions": {"code": "BAD_REQUEST"}}
        analyzer: QueryAnalyzer | None = getattr(self.view, "analyzer", None)
        if analyzer is None:
            return None
        problem = analyzer.selection_problem(query, name)
        if problem is not None:
            return {"message": problem, "extensions": {"code": "BAD_REQUEST"}}
        principal = self.context.principal
        settings = self.view.settings  # type: ignore[attr-defined]
        limits = {
            "anonymous": settings.query_limits_anonymous,
            "user": settings.query_limits_user,
            "admin": settings.query_limits_admin,
        }[principal.role_name]
        variables = payload.get("variables")
        violation = analyzer.check(
            query, name, variables if isinstance(variables, dict) else None, limits
        )
        if violation is None:
            return None
        return {
            "message": violation.message(principal.role_name),
            "extensions": {
                "code": ErrorCode.QUERY_TOO_COMPLEX.value,
                "limit": violation.limit,
                "value": violation.value,
                "maximum": violation.maximum,
            },
        }

    async def send_message(self, message: Message) -> None:
        payload: Any = message.get("payload")
        if message["type"] == "next" and isinstance(payload, dict) and payload.get("errors"):
            payload["errors"] = [self._with_code(error) for error in payload["errors"]]
            _count_errors(payload["errors"])
        elif message["type"] == "error" and isinstance(payload, list):
            errors = [self._with_code(error) for error in payload]
            message["payload"] = errors  # type: ignore[typeddict-item]
            _count_errors(errors)
        await super().send_message(message)

    def _with_code(self, error: dict[str, Any]) -> dict[str, Any]:
        extensions = dict(error.get("extensions") or {})
        production = self.view.settings.profile is Profile.PROD  # type: ignore[attr-defined]
        message = str(error.get("message", ""))
        if "code" not in extensions:
            if message == LIMIT_MESSAGE:  # Strawberry's, past max_subscriptions_per_connection
                limit = self.max_subscriptions_per_connection
                message = (
                    f"At most {limit} operations run at once on one connection: complete one "
                    "first, or open another connection."
                )
                extensions["code"] = "BAD_REQUEST"
                return {**error, "message": message, "extensions": extensions}
            if "path" in error:  # raised while resolving, and not by our code
                code = ErrorCode.INTERNAL_SERVER_ERROR
                logger.error("unexpected error in subscription %s: %s", error["path"], message)
                if production:
                    message = "Unexpected error."
            elif message.startswith("Syntax Error"):
                code = ErrorCode.GRAPHQL_PARSE_FAILED
            else:
                code = ErrorCode.GRAPHQL_VALIDATION_FAILED
            extensions["code"] = code.value
        if production:
            message = _SUGGESTION.sub("", message).rstrip()
        return {**error, "message": message, "extensions": extensions}


def _count_errors(errors: list[dict[str, Any]]) -> None:
    for error in errors:
        _errors(str((error.get("extensions") or {}).get("code", "INTERNAL_SERVER_ERROR"))).inc()
