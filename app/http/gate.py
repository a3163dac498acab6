"""What a request to /graphql passes before GraphQL sees it, cheapest refusal first:

1. content type: a POST must be JSON (a form or text/plain POST is what a cross-site page can
   send without a preflight: refusing it is the CSRF defence), else 415;
2. identity: the credential, if any, is checked (401 if wrong), giving the principal;
3. rate limit for that principal (429 with Retry-After);
4. the operation: a malformed request is a 400, a mutation over GET a 405;
5. CSRF prevention (prod), as Apollo Server 4 does it: a request a browser sends cross-site
   without a CORS preflight (no `Content-Type`, or one of the three CORS-safelisted ones) runs
   only when it carries a non-empty `X-Propintel-CSRF`, `Apollo-Require-Preflight` or
   `X-Apollo-Operation-Name` header, which no page can add without a preflight; else 400.
   POSTs are JSON by (1), so in practice this is about GETs;
6. query limits for the principal's role: batch size, bytes, tokens, depth, aliases, fields,
   directives and cost (QUERY_TOO_COMPLEX), so an oversized request runs no resolver.

The principal travels to the GraphQL context in the ASGI scope's state.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.identify import AuthenticationFailed, Authenticator
from app.errors import ErrorCode
from app.graphql.query_limits import Measure, QueryAnalyzer, Violation
from app.http.body import read_body, replay
from app.http.media import GRAPHQL_RESPONSE, as_graphql_response, preferred_media_type
from app.http.rate_limits import RateLimiter
from app.settings import Profile, Settings
from app.settings.query_limits import QueryLimits
from app.telemetry import metrics
from app.telemetry.labels import BatchedCounter, BatchedHistogram
from app.telemetry.request import RequestRecord, current_request

logger = logging.getLogger("propintel.gate")

MAX_BODY_BYTES = 1_000_000
CSRF_HEADER = "x-propintel-csrf"
PREFLIGHT_HEADERS = (CSRF_HEADER, "apollo-require-preflight", "x-apollo-operation-name")
"""Headers a cross-site page cannot send without a CORS preflight (any custom header would
do): ours, and the two that Apollo's clients send."""
SIMPLE_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
"""The CORS-safelisted content types: a browser sends them cross-site without a preflight."""
_QUERY_COSTS = BatchedHistogram(metrics.graphql_query_cost)
_RATE_LIMIT_DECISIONS = BatchedCounter(metrics.ratelimit_decisions)
CSRF_REFUSAL = (
    "This request has been blocked as a potential Cross-Site Request Forgery (CSRF): add a "
    "non-empty `X-Propintel-CSRF` header (or `Apollo-Require-Preflight`), or POST it as "
    "`Content-Type: application/json`."
)


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        authenticator: Authenticator,
        rate_limiter: RateLimiter | None,
        analyzer: QueryAnalyzer,
    ) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.analyzer = analyzer
        self.production = settings.profile is Profile.PROD
        self.limits = {
            "anonymous": settings.query_limits_anonymous,
            "user": settings.query_limits_user,
            "admin": settings.query_limits_admin,
        }
        self.costs = _QUERY_COSTS
        self.decisions = _RATE_LIMIT_DECISIONS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        answer_as = preferred_media_type(headers.get("accept", ""))
        if answer_as is not None:
            send = as_graphql_response(send)
        method = scope["method"]
        if method == "POST" and not _is_json(headers.get("content-type", "")):
            await _refuse(
                send,
                415,
                "POST a JSON body (Content-Type: application/json).",
                "BAD_REQUEST",
                answer_as,
            )
            return
        peer = scope["client"][0] if scope.get("client") else None
        try:
            principal = await self.authenticator.identify(headers, peer)
        except AuthenticationFailed as failure:
            await _refuse(
                send,
                401,
                failure.message,
                ErrorCode.UNAUTHENTICATED,
                answer_as,
                headers=[(b"www-authenticate", b'Bearer error="invalid_token"')],
            )
            return
        except Exception:
            logger.warning("credential check failed", exc_info=True)
            await _refuse(
                send,
                503,
                "Credentials cannot be checked right now; retry shortly.",
                ErrorCode.SERVICE_UNAVAILABLE,
                answer_as,
                headers=[(b"retry-after", b"1")],
            )
            return
        role = principal.role_name
        request = current_request.get()
        if request is not None:
            request.role = role
        if self.rate_limiter is not None:
            refusal = await self.rate_limiter.check(principal)
            self.decisions.inc(role, "allowed" if refusal is None else "limited")
            if refusal is not None:
                await _refuse(
                    send,
                    429,
                    refusal.message,
                    ErrorCode.RATE_LIMITED,
                    answer_as,
                    headers=[(b"retry-after", str(refusal.retry_after_s).encode())],
                    extensions={"retryAfterSeconds": refusal.retry_after_s},
                )
                return
        if method == "POST":
            body = await read_body(receive, MAX_BODY_BYTES)
            if body is None:
                await _refuse(send, 413, "The request body is too large.", "BAD_REQUEST", answer_as)
                return
            operations, problem = _posted_operations(body)
            receive = replay(body)
        else:
            operations, problem = _query_string_operation(scope)
            if problem is None and operations is None and (self.production or answer_as):
                problem = "Give the document in the `query` parameter."
        if problem is None and operations:
            problem = self._selection_problem(operations)
        if problem is not None:
            # GraphQL over HTTP: a request that is not a well-formed GraphQL request is a
            # 400 with a JSON body naming what is wrong (never a 500 or plain text).
            await _refuse(send, 400, problem, "BAD_REQUEST", answer_as)
            return
        limits = self.limits[role]
        # Each operation measured once (cached per document and role): its limits, its
        # cost, its type and name (for the record, and the GET-mutation rule below).
        measures = (
            [self._measure(operation, limits) for operation in operations]
            if operations and len(operations) <= limits.max_batch
            else None
        )
        first = measures[0] if measures else None
        if first is not None and request is not None:
            request.operation_type = first.operation_type
            request.operation_name = first.operation_name
        if method != "POST" and first is not None and first.operation_type == "mutation":
            # GraphQL over HTTP: a mutation over GET is refused with 405, not run.
            await _refuse(
                send,
                405,
                "Mutations must be sent with POST.",
                "BAD_REQUEST",
                answer_as,
                headers=[(b"allow", b"POST")],
            )
            return
        if self.production and not _preflighted(headers):
            await _refuse(send, 400, CSRF_REFUSAL, "BAD_REQUEST", answer_as)
            return
        violation = self._violation(operations, measures, limits, request)
        if violation is not None:
            # GraphQL over HTTP: a request refused before execution is a 4xx for the
            # graphql-response media type; plain JSON clients get 200 and the error.
            await _refuse(
                send,
                400 if answer_as else 200,
                violation.message(role),
                ErrorCode.QUERY_TOO_COMPLEX,
                answer_as,
                extensions={
                    "limit": violation.limit,
                    "value": violation.value,
                    "maximum": violation.maximum,
                },
            )
            return
        # The JSON front door reads the operation from here instead of parsing the body again.
        state = {**scope.get("state", {}), "principal": principal, "operations": operations}
        await self.app({**scope, "state": state}, receive, send)

    def _selection_problem(self, operations: list[dict[str, Any]]) -> str | None:
        for operation in operations:
            problem = self.analyzer.selection_problem(
                operation["query"], operation.get("operationName")
            )
            if problem is not None:
                return problem
        return None

    def _measure(self, operation: dict[str, Any], limits: QueryLimits) -> Measure:
        return self.analyzer.measure(
            operation["query"], operation.get("operationName"), operation.get("variables"), limits
        )

    def _violation(
        self,
        operations: list[dict[str, Any]] | None,
        measures: list[Measure] | None,
        limits: QueryLimits,
        request: RequestRecord | None,
    ) -> Violation | None:
        if not operations:
            return None  # not a GraphQL request we can read: the view says what is wrong
        if measures is None:
            return Violation("max_batch", len(operations), limits.max_batch)
        cost = 0
        for measure in measures:
            if measure.violation is not None:
                return measure.violation
            if measure.operation_type is not None:  # else validation reports the document
                self.costs.observe(measure.cost, measure.operation_type)
                cost += measure.cost
        if request is not None:
            request.cost = cost
        return None


def _is_json(content_type: str) -> bool:
    return _media_type(content_type) in ("application/json", GRAPHQL_RESPONSE)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _preflighted(headers: dict[str, str]) -> bool:
    """Whether a browser would have asked CORS first (Apollo Server 4's `preventCsrf`): a
    content type other than the safelisted ones, or a non-empty header of PREFLIGHT_HEADERS."""
    content_type = headers.get("content-type")
    if content_type is not None and _media_type(content_type) not in SIMPLE_CONTENT_TYPES:
        return True
    return any(headers.get(name) for name in PREFLIGHT_HEADERS)


Parsed = tuple[list[dict[str, Any]] | None, str | None]
"""(the operations, or None; what is wrong with the request, or None)."""


def _posted_operations(body: bytes) -> Parsed:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "The body is not valid JSON."
    if isinstance(payload, dict):
        operations = [payload]
    elif isinstance(payload, list) and payload and all(isinstance(op, dict) for op in payload):
        operations = payload
    else:
        return None, "The body must be a JSON object (or a non-empty array of them: a batch)."
    for operation in operations:
        problem = _malformed(operation)
        if problem is not None:
            return None, problem
    return operations, None


def _malformed(operation: dict[str, Any]) -> str | None:
    if not isinstance(operation.get("query"), str):
        return "`query` must be a string holding the GraphQL document."
    for name, kind, label in (
        ("operationName", str, "a string"),
        ("variables", dict, "an object"),
        ("extensions", dict, "an object"),
    ):
        value = operation.get(name)
        if value is not None and not isinstance(value, kind):
            return f"`{name}` must be {label} or null."
    return None


def _query_string_operation(scope: Scope) -> Parsed:
    params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    query = params.get("query")
    if not query:
        return None, None
    operation: dict[str, Any] = {"query": query[0]}
    if params.get("operationName"):
        operation["operationName"] = params["operationName"][0]
    for name in ("variables", "extensions"):
        if params.get(name):
            try:
                operation[name] = orjson.loads(params[name][0])
            except orjson.JSONDecodeError:
                return None, f"`{name}` must be URL-encoded JSON."
    problem = _malformed(operation)
    return ([operation], None) if problem is None else (None, problem)


async def _refuse(
    send: Send,
    status: int,
    message: str,
    code: str,
    answer_as: str | None,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> None:
    request = current_request.get()
    if request is not None:
        # Refused before execution; a credential check that could not run is our failure
        # (the error-ratio alert counts it), not the request's.
        request.outcome = "error" if code == ErrorCode.SERVICE_UNAVAILABLE else "rejected"
        request.note_errors(str(code))
    error = {"message": message, "extensions": {"code": str(code), **(extensions or {})}}
    content = orjson.dumps({"errors": [error]})
    content_type = (answer_as or "application/json").encode() + b"; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(content)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
