"""The edge of every HTTP request and websocket: its record, its id, its security headers,
its access line and its request metrics.

Pure ASGI (it is on the hot path): per request a record, a contextvar token and one closure
(one middleware, not two: each layer costs a closure and a hop per message).
The record (app/telemetry/request.py) is what the gate, the view and the executor fill in;
at the end this middleware writes one access line and counts the request. Every label tuple
is bounded (routes, status classes, allow-listed operation names, outcomes, error codes).

`X-Request-ID`: an inbound one is kept when it is short and made of safe characters (an id a
proxy or a client chose, so their logs and ours join), else one is made; it is echoed on the
response (and on the websocket's handshake answer).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from os import urandom
from time import perf_counter_ns

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.headers import CREDENTIAL_HEADERS, NO_STORE, security_headers
from app.telemetry import logging as logs
from app.telemetry import metrics
from app.telemetry.labels import TALLY, Children, RequestLabeller, RequestTally
from app.telemetry.operations import OperationNames
from app.telemetry.request import UNKNOWN, RequestRecord, current_request

REQUEST_ID = b"x-request-id"
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
ROUTES = frozenset({"/graphql", "/metrics", "/healthz", "/readyz", "/"})
"""`http_requests`' route label: one of these, else `other` (never a path a client made up)."""
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_WATCHED = CREDENTIAL_HEADERS | {REQUEST_ID}
_HEX_ID = re.compile(rb"[0-9a-f]{32}")
_IDS_PER_BATCH = 2048


_made_ids: list[bytes] = []
"""Ids for requests that came without one: 32 random hex digits (an id names a request, it
is no secret), made a batch at a time by one `urandom` and one regex pass in C; a request
pops one instead of formatting its own (~2,500 instructions here)."""


def _make_ids() -> None:
    _made_ids.extend(_HEX_ID.findall(urandom(16 * _IDS_PER_BATCH).hex().encode()))


_REQUESTS = RequestTally(
    metrics.http_requests, metrics.graphql_requests, metrics.graphql_request_duration
)
_GRAPHQL_ERRORS = Children(metrics.graphql_errors)
"""Written at once: errors are off the hot path, and an alert or a test reading /metrics
right after one sees it."""


class Observe:
    def __init__(self, app: ASGIApp, *, operations: OperationNames, production: bool) -> None:
        self.app = app
        self.operations = operations
        self.requests = _REQUESTS
        self.labeller: RequestLabeller = self._labels  # one bound method, made once
        self.graphql_errors = _GRAPHQL_ERRORS
        self.security = security_headers(production=production)
        self.security_names = frozenset(name for name, _ in self.security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        # One pass over the request's headers: its id, and whether it is credentialed.
        request_id: bytes | None = None
        credentialed = False
        for name, value in scope["headers"]:
            if name in _WATCHED:  # one set lookup per header: most are neither id nor credential
                if name != REQUEST_ID:
                    credentialed = True
                elif _SAFE_ID.fullmatch(value):
                    request_id = value
        if request_id is None:
            if not _made_ids:
                _make_ids()
            request_id = _made_ids.pop()
        id_header = (REQUEST_ID, request_id)
        security, security_names = self.security, self.security_names
        record = RequestRecord(
            request_id, scope["method"] if kind == "http" else "WS", scope["path"]
        )
        status = 0

        # A plain function returning send's awaitable: one coroutine per message, not two.
        def send_with_headers(message: Message) -> Awaitable[None]:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                # ASGI response header names are lowercase. A response that set one of
                # ours (GraphiQL's page sets its own CSP) keeps its own.
                extra = security
                for name, _ in headers:
                    if name in security_names:
                        present = {name for name, _ in headers}
                        extra = tuple(header for header in security if header[0] not in present)
                        break
                message["headers"] = [*headers, *extra, id_header]
                if credentialed and all(name != b"cache-control" for name, _ in headers):
                    message["headers"].append(NO_STORE)
            elif kind == "websocket.accept":
                status = 101
                message["headers"] = [*message.get("headers", ()), id_header]
            elif kind == "websocket.close" and status == 0:
                status = 403  # closed before the handshake: the server answers 403
            return send(message)

        if record.path == "/metrics":
            TALLY.flush()  # what this process counted so far, in the scrape it answers
        token = current_request.set(record)
        started = perf_counter_ns()
        try:
            await self.app(scope, receive, send_with_headers)
        except BaseException:
            if status == 0:
                status = 500  # Starlette's outermost handler answers it
            if record.outcome is not None or record.operation_type is not None:
                record.outcome = "error"
                record.note_errors("INTERNAL_SERVER_ERROR")
            raise
        finally:
            micros = (perf_counter_ns() - started) // 1000
            # Counted inline (this runs per request): one tuple and one dict update; the
            # flush labels it (RequestTally in app/telemetry/labels.py, `_labels` below).
            key = (
                self.labeller,
                record.path,
                status,
                record.operation_type,
                record.operation_name,
                record.outcome,
            )
            pending = self.requests.pending
            durations = pending.get(key)
            if durations is None:
                if not pending:  # the first since a flush: one is due (the gate's counts too)
                    TALLY.due()
                pending[key] = [micros]
            else:
                durations.append(micros)
            for code in record.error_codes:
                self.graphql_errors(code).inc()
            # The record holds no header's value, query string, variable or document: what a
            # caller sent stays out of the logs (the operation name is the client's label).
            access_line = logs.access_line
            if access_line is not None:
                access_line(record, status, micros)
            current_request.reset(token)

    def _labels(
        self,
        path: str,
        status: int,
        operation_type: str | None,
        operation_name: str | None,
        outcome: str | None,
    ) -> tuple[str, str, str | None, str | None, str | None]:
        """A request's metric labels, bounded: a known route or `other`, a status class,
        and for a GraphQL request (outcome set: answered, or refused at the gate) its
        operation type and allow-listed name."""
        route = path if path in ROUTES else "other"
        status_class = _STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx"
        if outcome is None:
            return route, status_class, None, None, None
        operation = self.operations.label(operation_name)
        return route, status_class, operation_type or UNKNOWN, operation, outcome
