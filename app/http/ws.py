"""graphql-transport-ws on /graphql: Strawberry's handler, with our error rules.

Over HTTP every error gets `extensions.code` and prod hides unexpected messages
(app/http/view.py `process_result`); Strawberry's websocket handler sends graphql-core's
formatted errors as they are. This handler applies the same rules to the errors of `next` and
`error` messages, so a subscriber sees what an HTTP client would.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

from app.context import Context
from app.errors import ErrorCode
from app.settings import Profile

logger = logging.getLogger("propintel.graphql")

LIMIT_MESSAGE = "Subscription limit reached"
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class SubscriptionHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def send_message(self, message: Message) -> None:
        payload: Any = message.get("payload")
        if message["type"] == "next" and isinstance(payload, dict) and payload.get("errors"):
            payload["errors"] = [self._with_code(error) for error in payload["errors"]]
        elif message["type"] == "error" and isinstance(payload, list):
            message["payload"] = [self._with_code(error) for error in payload]  # type: ignore[misc]
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
