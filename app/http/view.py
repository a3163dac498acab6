"""The HTTP endpoint of the schema: builds each request's context, gives every error a code."""

from __future__ import annotations

import logging
import re
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, Protocol, cast

import orjson
import strawberry
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from opentelemetry.trace import Span
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.types import HTTPMethod
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from app.accounts.service import Accounts
from app.alerts.service import AlertService
from app.auth.identify import AuthenticationFailed
from app.auth.principal import Principal, anonymous
from app.cache import Cache, PassThrough, RequestScope
from app.cache.service import CacheService
from app.context import Context
from app.errors import ErrorCode, server_side
from app.estimates.service import ModelRegistry
from app.estimates.tasks import Trainer
from app.graphql.executor import FALLBACK, STANDARD, CompiledExecutor, ran
from app.graphql.plan import OperationPlan
from app.graphql.query_limits import QueryAnalyzer
from app.http.graphiql import graphiql_page
from app.http.variables import name_the_argument
from app.http.ws import SubscriptionHandler, credential_headers
from app.jobs.service import JobQueue
from app.resilience.deadline import deadline_in
from app.settings import Profile, Settings
from app.streams.broker import AlertBroker
from app.telemetry.operations import OperationNames
from app.telemetry.request import current_request
from app.telemetry.tracing import Tracing, mark_errors
from app.webhooks.service import WebhookService
from db.engine import Database
from loaders import create_loaders

logger = logging.getLogger("propintel.graphql")
PLAN_TRIED = "plan_tried"
"""Request state flag: the JSON front door already planned (and ran) this request's
operation, so the view runs Strawberry's executor without planning it again."""
IN_SPAN = "graphql_span"
"""Request state flag: the JSON front door opened this operation's GraphQL span (a plan that
fell back runs in the view inside it), so the view opens none."""
PASS_THROUGH = PassThrough()


def _unavailable(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") == ErrorCode.SERVICE_UNAVAILABLE.value


def _stale_extensions(age_s: float) -> dict[str, Any]:
    """How clients learn an answer is stale: `extensions.stale.secondsPastTtl`."""
    return {"stale": {"secondsPastTtl": round(age_s, 1)}}


class HeaderSink(Protocol):
    """Where response headers go: a Starlette response's headers, or a plain dict."""

    def __setitem__(self, key: str, value: str, /) -> None: ...


def error_code(error: GraphQLError) -> ErrorCode:
    """The code of an error that did not bring one: where in the pipeline it arose."""
    if error.path is not None:  # raised while resolving, and not by our code
        return ErrorCode.INTERNAL_SERVER_ERROR
    if error.message.startswith("Syntax Error"):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    if _VARIABLE_COERCION.match(error.message):  # graphql-core's wording for bad variables
        return ErrorCode.BAD_USER_INPUT
    if error.original_error is not None:
        return ErrorCode.INTERNAL_SERVER_ERROR
    return ErrorCode.GRAPHQL_VALIDATION_FAILED


_VARIABLE_COERCION = re.compile(r"Variable '\$\w+' has invalid (default )?value")


class PropintelGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = SubscriptionHandler

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        caching: CacheService | None,
        accounts: Accounts,
        models: ModelRegistry | None = None,
        trainer: Trainer | None = None,
        alerts: AlertService,
        webhooks: WebhookService,
        jobs: JobQueue,
        broker: AlertBroker,
        **kwargs: Any,
    ) -> None:
        # Subscriptions: graphql-transport-ws only (the legacy graphql-ws protocol is
        # refused), a client has 10 s to send connection_init, 10 operations per socket.
        kwargs.setdefault("subscription_protocols", (GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        kwargs.setdefault("connection_init_wait_timeout", timedelta(seconds=10))
        kwargs.setdefault("max_subscriptions_per_connection", 10)
        super().__init__(**kwargs)
        self.alerts = alerts
        self.webhooks = webhooks
        self.jobs = jobs
        self.broker = broker
        self.db = db
        self.accounts = accounts
        self.models = models
        self.trainer = trainer
        self.settings = settings
        self.caching = caching
        self.compiled: CompiledExecutor | None = None
        self.analyzer: QueryAnalyzer | None = None
        """The gate's query limits, for subscriptions (app/http/ws.py; set by app/asgi.py)."""
        self.tracing: Tracing | None = None
        """GraphQL spans, when tracing is on (set by app/asgi.py)."""
        self.operation_names = OperationNames(settings.metrics_operations)
        """The operation names metrics may carry (subscriptions: app/http/ws.py)."""
        if settings.compiled_execution:
            assert isinstance(self.schema, strawberry.Schema)
            self.compiled = CompiledExecutor(
                self.schema, report_statements=settings.exposes_debug_info
            )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return await self.build_context(
            request,  # type: ignore[arg-type]
            response if isinstance(response, Response) else None,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """connection_init's payload carries the credential as a header would:
        `{"Authorization": "Bearer <access token or API key>"}`. None: anonymous (it may
        connect; `alerts` then answers UNAUTHENTICATED). A wrong one closes the socket with
        4403 Forbidden (so does, later, its expiry or revocation: app/http/ws.py). A check
        that cannot run (the database is down for an API key) ends the connection with an
        internal error, so the client retries instead of signing in."""
        headers = credential_headers(context.connection_params or {})
        forwarded = context.request.headers.get("x-forwarded-for")
        if forwarded is not None:  # the client's address behind trusted proxies
            headers["x-forwarded-for"] = forwarded
        client = context.request.client
        try:
            context.principal = await self.accounts.authenticator.identify(
                headers, client.host if client else None
            )
        except AuthenticationFailed as failure:
            raise ConnectionRejectionError({"message": failure.message}) from None
        request = current_request.get()  # the websocket's record (app/http/observe.py)
        if request is not None:
            request.role = context.principal.role_name
        return cast(UnsetType, UNSET)  # an ack without a payload

    async def build_context(self, request: Request, response: Response | None) -> Context:
        caching = self.caching
        cache: Cache = caching.tiered if caching is not None else PASS_THROUGH
        scope = RequestScope() if caching is not None else None
        return Context(
            request=request,
            response=response,
            db=self.db,
            settings=self.settings,
            loaders=create_loaders(self.db, cache, scope),
            cache=cache,
            caching=caching,
            scope=scope,
            principal=_principal(request),
            accounts=self.accounts,
            models=self.models,
            trainer=self.trainer,
            alerts=self.alerts,
            webhooks=self.webhooks,
            jobs=self.jobs,
            broker=self.broker,
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Every dependency call made for this operation (and its retries) fits in this.
        with deadline_in(self.settings.request_timeout_s):
            tracing = self.tracing
            if tracing is None or request.scope.get("state", {}).get(IN_SPAN):
                return await self._execute_single(
                    request, request_adapter, sub_response, context, root_value, request_data
                )
            with self.operation_span(
                tracing, request_data.query, request_data.operation_name
            ) as span:
                result = await self._execute_single(
                    request, request_adapter, sub_response, context, root_value, request_data
                )
                mark_errors(span, [_code_of(error) for error in result.errors or ()])
                return result

    def operation_span(
        self, tracing: Tracing, query: str | None, operation_name: str | None
    ) -> AbstractContextManager[Span]:
        """The operation's GraphQL span; its type and name from the gate's cached parse."""
        chosen = None
        if self.analyzer is not None and query is not None:
            chosen = self.analyzer.operation(query, operation_name)
        operation_type = chosen.operation.value if chosen is not None else None
        if chosen is not None and chosen.name is not None:
            operation_name = chosen.name.value
        return tracing.operation_span(operation_type, operation_name, query)

    async def _execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        if _is_subscription(request_data.query, request_data.operation_name):
            # Strawberry would run it as a query (no HTTP stream transport is on) and fail
            # on the async generator; say where subscriptions are served instead.
            sub_response.status_code = 400
            return ExecutionResult(
                data=None,
                errors=[GraphQLError(SUBSCRIPTION_OVER_HTTP, extensions={"code": "BAD_REQUEST"})],
            )
        plan = None
        tried = request.scope.get("state", {}).get(PLAN_TRIED)
        if not tried:
            plan = self.plan_for(
                request_adapter.method, request_data.query, request_data.operation_name
            )
        if plan is not None:
            assert request_data.query is not None
            result = await self.answer_with_plan(
                plan,
                request_data.query,
                request_data.operation_name,
                request_data.variables,
                context,
                sub_response.headers,
            )
            if result is not None:
                return result
        elif not (tried and _fell_back()):  # a plan that fell back was counted as such
            ran(STANDARD)
        return await super().execute_single(
            request=request,
            request_adapter=request_adapter,
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=request_data,
        )

    def plan_for(
        self, method: HTTPMethod, query: str | None, operation_name: str | None
    ) -> OperationPlan | None:
        if self.compiled is None or query is None:
            return None
        if method == "GET" and not self.allow_queries_via_get:
            return None
        return self.compiled.plan(query, operation_name)

    async def answer_with_plan(
        self,
        plan: OperationPlan,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        context: Context,
        headers: HeaderSink,
    ) -> ExecutionResult | None:
        """A query a plan covers, from the whole-operation cache or the plan; None when the
        standard executor must run it (an error to report)."""
        assert self.compiled is not None
        caching = self.caching
        if caching is None or context.scope is None or not plan.cacheable:
            # Not cacheable: a field depends on the caller (or goes out of date unseen), so
            # the response is never stored, whatever the role.
            return await self.compiled.execute(plan, context, variables)
        # Cacheable plans read public fields only; the role still partitions them, which
        # costs a few entries and keeps the rule simple should limits or fields differ by role.
        role = context.principal.role_name
        key = caching.operation_key(query, operation_name, variables, role)
        cached = await caching.cached_operation(key)
        if cached is not None:
            headers["x-cache"] = _note_cache("hit")
            extensions = {"sqlStatements": 0} if self.settings.exposes_debug_info else None
            return ExecutionResult(data=cached, errors=None, extensions=extensions)
        headers["x-cache"] = _note_cache("miss")
        ticket = caching.ticket()
        result = await self.compiled.execute(plan, context, variables)
        if result is None:
            return None
        if result.errors:
            if all(_unavailable(error) for error in result.errors):
                # Stale-if-error: the last good answer, marked, rather than no answer.
                stale = await caching.stale_operation(key)
                if stale is not None:
                    headers["x-cache"] = _note_cache("stale")
                    return ExecutionResult(
                        data=stale[0], errors=None, extensions=_stale_extensions(stale[1])
                    )
            return result
        if context.scope.stale_s > 0:  # built from stale entries: say so, do not store it
            headers["x-cache"] = _note_cache("stale")
            extensions = {**(result.extensions or {}), **_stale_extensions(context.scope.stale_s)}
            return ExecutionResult(data=result.data, errors=None, extensions=extensions)
        if result.data is not None:
            await caching.store_operation(key, result.data, context.scope, ticket)
        return result

    async def render_graphql_ide(self, request: Request) -> Response:
        # Ours instead of Strawberry's (whose page loads its scripts from a CDN).
        return graphiql_page()

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        record = current_request.get()
        if result.errors:
            errors = [self._format_error(error) for error in result.errors]
            response["errors"] = errors  # type: ignore[typeddict-item]
            if record is not None:  # a batch: its worst operation (error > client_error)
                codes = [error["extensions"]["code"] for error in errors]
                record.note_errors(*codes)
                if record.outcome != "error":
                    ours = any(server_side(code) for code in codes)
                    record.outcome = "error" if ours else "client_error"
        elif record is not None and record.outcome is None:
            record.outcome = "ok"
        if result.extensions:
            response["extensions"] = result.extensions
        return response

    def _format_error(self, error: GraphQLError) -> dict[str, Any]:
        formatted: dict[str, Any] = dict(error.formatted)
        extensions = dict(formatted.get("extensions") or {})
        if "code" not in extensions:
            code = error_code(error)
            extensions["code"] = code.value
            if code is ErrorCode.BAD_USER_INPUT:
                formatted["message"] = name_the_argument(error, formatted["message"], extensions)
            if code is ErrorCode.INTERNAL_SERVER_ERROR:
                logger.error("unexpected error in %s", error.path, exc_info=error.original_error)
                if self.settings.profile is Profile.PROD:
                    formatted["message"] = "Unexpected error."
        if self.settings.profile is Profile.PROD:
            # "Did you mean ...?" hints map the schema for someone introspection keeps out.
            formatted["message"] = _SUGGESTION.sub("", formatted["message"]).rstrip()
        formatted["extensions"] = extensions
        return formatted


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
SUBSCRIPTION_OVER_HTTP = (
    "Subscriptions are served over a graphql-transport-ws websocket on /graphql, not over "
    "HTTP requests."
)


def _is_subscription(query: str | None, operation_name: str | None) -> bool:
    if query is None or "subscription" not in query:  # most documents: no parse
        return False
    try:
        document = parse(query)
    except GraphQLError:
        return False  # Strawberry reports the syntax error
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


def _note_cache(result: str) -> str:
    """The whole-operation cache's answer, in the request's record and the x-cache header."""
    request = current_request.get()
    if request is not None:
        request.cache = result
    return result


def _fell_back() -> bool:
    request = current_request.get()
    return request is not None and request.executor == FALLBACK


def _code_of(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    return str(code) if code is not None else error_code(error).value


def _principal(request: Request) -> Principal:
    """Set by the gate (app/http/gate.py) for every /graphql request."""
    principal = request.scope.get("state", {}).get("principal")
    if isinstance(principal, Principal):
        return principal
    client = request.client
    return anonymous(client.host if client else "unknown")
