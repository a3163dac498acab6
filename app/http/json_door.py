"""/graphql's front door: a JSON POST of a document a compiled plan covers is answered here;
every other request goes to Strawberry's view unchanged.

Strawberry's view negotiates content types, multipart uploads, batches, GraphiQL and
subscriptions for every request; for the common case (`POST application/json`, one query, a
JSON answer) that work is a tenth of the request's CPU. This endpoint takes the operation
the gate already parsed, and either answers from the plan (or the whole-operation cache) or
hands the request, body replayed, to the view, which then behaves exactly as it would have.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app.graphql.plan import OperationPlan
from app.http.body import read_body, replay
from app.http.view import IN_SPAN, PLAN_TRIED, PropintelGraphQL
from app.resilience.deadline import deadline_in
from app.telemetry.request import current_request
from app.telemetry.tracing import mark_errors

_JSON = b"application/json"


class GraphQLEndpoint:
    def __init__(self, view: PropintelGraphQL) -> None:
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.view.compiled is None:
            await self.view(scope, receive, send)
            return
        if not _wants_plain_json(scope):
            await self.view(scope, receive, send)
            return
        body = await read_body(receive) or b""
        replayed = replay(body)
        payload = _single_operation(scope)
        if payload is None:
            await self.view(scope, replayed, send)
            return
        query, operation_name, variables = payload
        plan = self.view.plan_for("POST", query, operation_name)
        # Whatever happens next, the view must not plan this operation again: no plan stays
        # no plan (and was counted once), and a plan that fell back has run once already.
        scope.setdefault("state", {})[PLAN_TRIED] = True
        if plan is None:
            await self.view(scope, replayed, send)
            return
        tracing = self.view.tracing
        if tracing is None:
            await self._answer(scope, body, replayed, send, plan, query, operation_name, variables)
            return
        # One GraphQL span for the operation, whichever executor answers it.
        scope["state"][IN_SPAN] = True
        with self.view.operation_span(tracing, query, operation_name) as span:
            codes = await self._answer(
                scope, body, replayed, send, plan, query, operation_name, variables
            )
            mark_errors(span, codes)

    async def _answer(
        self,
        scope: Scope,
        body: bytes,
        replayed: Receive,
        send: Send,
        plan: OperationPlan,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> list[str]:
        """Answers from the plan (or hands it to the view); the response's error codes."""
        request = Request(scope, replayed)
        context = await self.view.build_context(request, None)
        headers: dict[str, str] = {}
        with deadline_in(self.view.settings.request_timeout_s):
            result = await self.view.answer_with_plan(
                plan, query, operation_name, variables, context, headers
            )
        if result is None:  # an error to report: the view runs it and formats it
            await self.view(scope, replay(body), send)
            record = current_request.get()
            return list(record.error_codes) if record is not None else []
        response = await self.view.process_result(request, result)
        content = self.view.encode_json(response)
        raw_headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(content)).encode()),
            *((name.encode(), value.encode()) for name, value in headers.items()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})
        errors: Any = response.get("errors") or ()
        return [error["extensions"]["code"] for error in errors]


def _wants_plain_json(scope: Scope) -> bool:
    content_type = accept = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
    if not content_type.startswith(_JSON):
        return False
    return not accept or b"*/*" in accept or _JSON in accept


def _single_operation(scope: Scope) -> tuple[str, str | None, dict[str, Any] | None] | None:
    """(query, operation name, variables) of a single request, as the gate (app/http/gate.py)
    parsed and checked it; None for a batch (the view runs those)."""
    operations = scope.get("state", {}).get("operations")
    if not operations or len(operations) != 1:
        return None
    operation = operations[0]
    return operation["query"], operation.get("operationName"), operation.get("variables")
